package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The ack cursor is a 16-byte file: "OBX1", the acked id (uint64
// little-endian) and the CRC-32C of the first 12 bytes. It is replaced
// atomically (write a temporary file, fsync, rename, fsync the directory).
const (
	cursorName    = "ack"
	cursorTmpName = "ack.tmp"
	cursorMagic   = "OBX1"
	cursorSize    = 16
)

// readCursor returns the persisted ack id: zero when there is none yet, and
// an error wrapping errBadCursor when the file is damaged.
func readCursor(dir string) (ID, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: read ack cursor: %w", err)
	}
	if len(b) != cursorSize || string(b[:4]) != cursorMagic ||
		crc32.Checksum(b[:12], crcTable) != binary.LittleEndian.Uint32(b[12:]) {
		return 0, errBadCursor
	}
	return ID(binary.LittleEndian.Uint64(b[4:])), nil
}

var errBadCursor = errors.New("outbox: ack cursor damaged")

// writeCursor persists id as the ack cursor.
func writeCursor(dir string, id ID, sync bool) error {
	b := make([]byte, 0, cursorSize)
	b = append(b, cursorMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(id))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	tmp := filepath.Join(dir, cursorTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: write ack cursor: %w", err)
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, cursorName))
	}
	if err == nil && sync {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("outbox: write ack cursor: %w", err)
	}
	return nil
}

// syncDir makes file creations, renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
