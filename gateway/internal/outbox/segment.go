package outbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const segmentExt = ".seg"

// segment is one file of frames, named after the id of its first record.
// The fields are guarded by Outbox.mu; only the writer changes size, last
// and sealed of the active (last) segment.
type segment struct {
	base   ID
	path   string
	size   int64 // committed (synced) bytes
	last   ID    // id of the last committed record; base-1 when empty
	sealed bool  // no more appends: a later segment exists
}

func segmentName(base ID) string {
	return fmt.Sprintf("%020d%s", uint64(base), segmentExt)
}

// listSegments returns the segment files in dir ordered by base id.
func listSegments(dir string) ([]*segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: read dir: %w", err)
	}
	var segs []*segment
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil || n == 0 {
			continue
		}
		segs = append(segs, &segment{base: ID(n), path: filepath.Join(dir, name), last: ID(n) - 1})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return compareID(a.base, b.base) })
	return segs, nil
}

func compareID(a, b ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanResult is what scanning one segment's bytes found.
type scanResult struct {
	valid int64 // length of the prefix of whole, valid, in-sequence frames
	last  ID    // id of the last valid frame; base-1 when none
	// damaged reports that the scan stopped before the end of the data.
	damaged bool
	// reason says why, for the log and for ErrCorrupt.
	reason string
}

// scanSegment walks the frames of a segment whose first id is base, calling
// fn with the id, offset and framed size of each valid frame, and stops at
// the first frame that is incomplete, fails its checksum or is out of
// sequence.
func scanSegment(data []byte, base ID, fn func(id ID, off, size int64)) scanResult {
	res := scanResult{last: base - 1}
	for off := 0; off < len(data); {
		p, st := checkFrame(data[off:])
		switch st {
		case frameTruncated:
			res.damaged, res.reason = true, fmt.Sprintf("incomplete record at offset %d", off)
			return res
		case frameBad:
			res.damaged, res.reason = true, fmt.Sprintf("bad record (checksum, length or version) at offset %d", off)
			return res
		}
		if id := payloadID(p); id != res.last+1 {
			res.damaged, res.reason = true, fmt.Sprintf("record id %d at offset %d, want %d", id, off, res.last+1)
			return res
		}
		size := int64(frameHeaderSize + len(p))
		res.last++
		if fn != nil {
			fn(res.last, int64(off), size)
		}
		off += int(size)
		res.valid = int64(off)
	}
	return res
}

// validFrameAfter reports whether any valid frame with an id after last
// starts anywhere in data past from. A crash mid-write can only damage the
// tail written after the last fsync, so a valid later record proves that the
// damage is in synced data (corruption) rather than a torn write.
func validFrameAfter(data []byte, from int64, last ID) bool {
	for off := from + 1; off+frameHeaderSize+minPayloadSize <= int64(len(data)); off++ {
		b := data[off:]
		// Cheap filters first so that a long damaged region costs a scan,
		// not a checksum per byte.
		if b[frameHeaderSize] != payloadVersion {
			continue
		}
		id := ID(binary.LittleEndian.Uint64(b[frameHeaderSize+idOffset:]))
		if id <= last || id > last+ID(len(data)) {
			continue
		}
		if _, st := checkFrame(b); st == frameOK {
			return true
		}
	}
	return false
}
