package outbox

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// recover rebuilds the in-memory state from the directory. See Open.
func (o *Outbox) recover() error {
	ack, err := o.readAck()
	if err != nil {
		return err
	}
	o.persisted = ack

	segs, err := listSegments(o.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		seg := &segment{base: ack + 1, path: filepath.Join(o.dir, segmentName(ack+1)), last: ack}
		if err := createFile(seg.path, !o.opts.NoSync); err != nil {
			return err
		}
		segs = []*segment{seg}
	}
	// Segments wholly before the first file were acked and deleted; the
	// cursor may not have caught up with the deletion.
	ack = max(ack, segs[0].base-1)

	ackSeg, ackOff, expect, err := o.scanSegments(segs, ack)
	if err != nil {
		return err
	}
	o.lastID = expect - 1
	if ack > o.lastID {
		o.log.Warn("outbox ack cursor is past the stored records", slog.Uint64("acked_id", uint64(ack)), slog.Uint64("last_id", uint64(o.lastID)))
		ack = o.lastID
	}
	if ackSeg == nil {
		ackSeg = segs[len(segs)-1]
		ackOff = ackSeg.size
	}
	o.ackID = ack
	o.segs = segs
	o.reserved.Store(o.bytes)
	o.rd = reader{next: ack + 1, seg: ackSeg, off: ackOff, ackSeg: ackSeg, ackOff: ackOff}

	o.active = segs[len(segs)-1]
	o.nextID = o.lastID + 1
	o.woff = o.active.size
	if o.wf, err = os.OpenFile(o.active.path, os.O_WRONLY, 0); err != nil {
		return fmt.Errorf("outbox: open segment: %w", err)
	}
	o.log.Info("outbox opened",
		slog.Int64("depth", o.depth), slog.Int64("bytes", o.bytes), slog.Int("segments", len(segs)),
		slog.Uint64("last_id", uint64(o.lastID)), slog.Uint64("acked_id", uint64(ack)))
	return nil
}

func createFile(path string, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: create segment: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: create segment: %w", err)
	}
	if sync {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fmt.Errorf("outbox: create segment: sync dir: %w", err)
		}
	}
	return nil
}

func truncateFile(path string, size int64, sync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("outbox: truncate torn tail: %w", err)
	}
	err = f.Truncate(size)
	if err == nil && sync {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("outbox: truncate torn tail: %w", err)
	}
	return nil
}

// readAck reads the ack cursor: the last record delivered. A damaged cursor
// reads as 0, which costs duplicates, never records.
func (o *Outbox) readAck() (ID, error) {
	if err := os.Remove(filepath.Join(o.dir, cursorTmpName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("outbox: remove stale cursor: %w", err)
	}
	ack, err := readCursor(o.dir)
	if errors.Is(err, errBadCursor) {
		// Losing the cursor costs duplicates, never records.
		o.log.Warn("outbox ack cursor damaged, delivering every stored record again")
		ack = 0
	} else if err != nil {
		return 0, err
	}
	return ack, nil
}

// scanSegments checks that segs follow each other, counts the records
// after ack (depth, bytes), truncates a torn tail of the last segment, and
// returns where the first record after ack starts (nil when none) and the
// id the next record will have.
func (o *Outbox) scanSegments(segs []*segment, ack ID) (ackSeg *segment, ackOff int64, expect ID, err error) {
	expect = segs[0].base
	for i, s := range segs {
		if s.base != expect {
			return nil, 0, 0, fmt.Errorf("%w: %s starts at id %d, want %d", ErrCorrupt, s.path, s.base, expect)
		}
		data, err := os.ReadFile(s.path)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("outbox: read segment: %w", err)
		}
		res := scanSegment(data, s.base, func(id ID, off, size int64) {
			if id <= ack {
				return
			}
			if ackSeg == nil {
				ackSeg, ackOff = s, off
			}
			o.depth++
			o.bytes += size
		})
		last := i == len(segs)-1
		if res.damaged {
			// Only the tail of the last segment can be torn by a crash: a
			// sealed segment was synced before the next one was created.
			if !last || validFrameAfter(data, res.valid, res.last) {
				return nil, 0, 0, fmt.Errorf("%w: %s: %s", ErrCorrupt, s.path, res.reason)
			}
			o.log.Warn("outbox truncating torn tail left by a crash",
				slog.String("path", s.path), slog.String("reason", res.reason), slog.Int64("bytes", int64(len(data))-res.valid))
			if err := truncateFile(s.path, res.valid, !o.opts.NoSync); err != nil {
				return nil, 0, 0, err
			}
		}
		s.size, s.last, s.sealed = res.valid, res.last, !last
		expect = res.last + 1
	}
	return ackSeg, ackOff, expect, nil
}
