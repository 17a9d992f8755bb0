package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// readChunk is how much Next reads from a segment at a time.
const readChunk = 256 << 10

// reader is the consumer's position. Delivered records stay in spans until
// they are acked, so that Ack knows their sizes and Rewind where to go back.
type reader struct {
	next ID       // id of the next record Next returns
	seg  *segment // segment holding next (or ending just before it)
	off  int64    // offset of next in seg

	file   *os.File // open on seg, lazily
	buf    []byte   // bytes of seg starting at bufPos
	bufPos int64

	spans []span // delivered, not yet acked; spans[head:] are live
	head  int

	ackSeg *segment // position just past the last acked record
	ackOff int64

	dec decoder
}

type span struct {
	id   ID
	size int64
	seg  *segment
	end  int64 // offset just past the record
}

func (r *reader) closeFile() {
	if r.file != nil {
		_ = r.file.Close()
		r.file = nil
	}
	r.buf = r.buf[:0]
	r.bufPos = 0
}

// Next returns up to limit committed records after the read cursor, in id
// order, and moves the cursor past them; a limit below 1 counts as 1. It blocks
// until at least one record is available, ctx ends (returning ctx.Err()) or
// the outbox is closed (ErrClosed). Returned entries are the caller's.
func (o *Outbox) Next(ctx context.Context, limit int) ([]Entry, error) {
	limit = max(limit, 1)
	for {
		o.readMu.Lock()
		o.mu.Lock()
		if o.shut {
			o.mu.Unlock()
			o.readMu.Unlock()
			return nil, ErrClosed
		}
		if o.rd.next <= o.lastID {
			if o.rd.off >= o.rd.seg.size {
				// The cursor is at the end of a sealed segment: the next
				// record opens the following one.
				o.rd.closeFile()
				o.rd.seg, o.rd.off = o.segmentFor(o.rd.next), 0
			}
			seg, end := o.rd.seg, o.rd.seg.size
			o.mu.Unlock()
			entries, err := o.read(seg, end, limit)
			o.readMu.Unlock()
			return entries, err
		}
		wait := o.notify
		o.mu.Unlock()
		o.readMu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
	}
}

// segmentFor returns the segment that holds id. Callers hold mu.
func (o *Outbox) segmentFor(id ID) *segment {
	i, found := slices.BinarySearchFunc(o.segs, id, func(s *segment, id ID) int { return compareID(s.base, id) })
	if !found {
		i--
	}
	return o.segs[max(i, 0)]
}

// read decodes up to limit records of seg from the cursor, reading no further
// than end (the committed size). Callers hold readMu.
func (o *Outbox) read(seg *segment, end int64, limit int) ([]Entry, error) {
	r := &o.rd
	if r.file == nil {
		f, err := os.Open(seg.path)
		if err != nil {
			return nil, fmt.Errorf("outbox: open segment for reading: %w", err)
		}
		r.file, r.buf, r.bufPos = f, r.buf[:0], r.off
	}
	var entries []Entry
	for len(entries) < limit && r.off < end {
		b := r.buf[r.off-r.bufPos:]
		p, st := checkFrame(b)
		switch st {
		case frameTruncated:
			if err := o.fill(seg, end); err != nil {
				return entries, err
			}
			continue
		case frameBad:
			return entries, fmt.Errorf("%w: %s: bad record at offset %d", ErrCorrupt, seg.path, r.off)
		}
		if id := payloadID(p); id != r.next {
			return entries, fmt.Errorf("%w: %s: record id %d at offset %d, want %d", ErrCorrupt, seg.path, id, r.off, r.next)
		}
		e, err := r.dec.decode(bytes.Clone(p))
		if err != nil {
			return entries, fmt.Errorf("%w: %s: record %d: %w", ErrCorrupt, seg.path, r.next, err)
		}
		entries = append(entries, e)
		size := int64(frameHeaderSize + len(p))
		r.off += size
		r.spans = append(r.spans, span{id: r.next, size: size, seg: seg, end: r.off})
		r.next++
	}
	return entries, nil
}

// fill reads more of seg into the buffer: at least the whole frame at the
// cursor, at most readChunk past it unless the frame is larger.
func (o *Outbox) fill(seg *segment, end int64) error {
	r := &o.rd
	r.buf = append(r.buf[:0], r.buf[r.off-r.bufPos:]...)
	r.bufPos = r.off
	have := r.bufPos + int64(len(r.buf))
	want := min(end-have, readChunk)
	if len(r.buf) >= frameHeaderSize {
		frame := int64(frameHeaderSize) + int64(binary.LittleEndian.Uint32(r.buf))
		want = max(want, frame-int64(len(r.buf)))
	}
	if want <= 0 || have+want > end {
		return fmt.Errorf("%w: %s: record at offset %d runs past the committed end %d", ErrCorrupt, seg.path, r.off, end)
	}
	r.buf = slices.Grow(r.buf, int(want))
	n, err := r.file.ReadAt(r.buf[len(r.buf):len(r.buf)+int(want)], have)
	r.buf = r.buf[:len(r.buf)+n]
	if err != nil && !(err == io.EOF && int64(n) == want) {
		return fmt.Errorf("outbox: read %s: %w", seg.path, err)
	}
	return nil
}

// Ack marks every record up to and including upTo as delivered. upTo must
// not be past the last record returned by Next; acking an id at or below
// the current ack is a no-op. Progress is persisted every
// Options.AckInterval and on Close.
func (o *Outbox) Ack(upTo ID) error {
	o.readMu.Lock()
	defer o.readMu.Unlock()
	r := &o.rd
	o.mu.Lock()
	shut, acked := o.shut, o.ackID
	o.mu.Unlock()
	if shut {
		return ErrClosed
	}
	if upTo <= acked {
		return nil
	}
	if upTo >= r.next {
		return fmt.Errorf("outbox: ack %d is past the last delivered id %d", upTo, r.next-1)
	}
	var n, freed int64
	for r.head < len(r.spans) && r.spans[r.head].id <= upTo {
		s := r.spans[r.head]
		n++
		freed += s.size
		r.ackSeg, r.ackOff = s.seg, s.end
		r.head++
	}
	if r.head == len(r.spans) {
		r.spans, r.head = r.spans[:0], 0
	} else if r.head > 1024 && r.head > len(r.spans)/2 {
		r.spans = append(r.spans[:0], r.spans[r.head:]...)
		r.head = 0
	}
	o.mu.Lock()
	o.ackID = upTo
	o.depth -= n
	o.bytes -= freed
	o.mu.Unlock()
	o.reserved.Add(-freed)
	return nil
}

// Rewind moves the read cursor back to just after the last ack, so that
// Next delivers again every record it returned but nobody acked: what a
// publisher does after a failure it cannot attribute to single records.
func (o *Outbox) Rewind() error {
	o.readMu.Lock()
	defer o.readMu.Unlock()
	o.mu.Lock()
	shut, acked := o.shut, o.ackID
	o.mu.Unlock()
	if shut {
		return ErrClosed
	}
	r := &o.rd
	r.closeFile()
	r.next, r.seg, r.off = acked+1, r.ackSeg, r.ackOff
	r.spans, r.head = r.spans[:0], 0
	return nil
}
