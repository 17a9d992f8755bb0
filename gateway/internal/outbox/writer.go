package outbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// writeLoop is the single writer: it takes whatever appends are queued,
// commits them as one batch and releases their callers, until Close closes
// the queue.
func (o *Outbox) writeLoop() {
	defer close(o.writerDone)
	batch := make([]*appendReq, 0, 64)
	lastBatch := 0
	var tick <-chan time.Time
	if o.opts.SyncInterval > 0 && !o.opts.NoSync {
		t := time.NewTicker(o.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var req *appendReq
		select {
		case r, ok := <-o.reqs:
			if !ok {
				o.syncDirty()
				return
			}
			req = r
		case <-tick:
			o.syncDirty()
			continue
		}
		batch = append(batch[:0], req)
		size := len(req.frame)
	drain:
		for len(batch) < maxBatchRecords && size < maxBatchBytes {
			select {
			case r, ok := <-o.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				size += len(r.frame)
			default:
				break drain
			}
		}
		if o.opts.CommitDelay > 0 && lastBatch > 1 {
			batch, size = o.gather(batch, size)
		}
		lastBatch = len(batch)
		o.commit(batch)
		clear(batch)
	}
}

// gather waits up to CommitDelay for more appends to join batch.
func (o *Outbox) gather(batch []*appendReq, size int) ([]*appendReq, int) {
	timer := time.NewTimer(o.opts.CommitDelay)
	defer timer.Stop()
	for len(batch) < maxBatchRecords && size < maxBatchBytes {
		select {
		case r, ok := <-o.reqs:
			if !ok {
				return batch, size
			}
			batch = append(batch, r)
			size += len(r.frame)
		case <-timer.C:
			return batch, size
		}
	}
	return batch, size
}

// commit writes batch in as few chunks as segment boundaries allow, each
// with one write and one fdatasync, and answers every request.
func (o *Outbox) commit(batch []*appendReq) {
	if f := o.failed.Load(); f != nil {
		o.reject(batch, *f)
		return
	}
	now := time.Now().UnixNano()
	for len(batch) > 0 {
		if o.woff > 0 && o.woff+int64(len(batch[0].frame)) > o.opts.SegmentBytes {
			if err := o.roll(); err != nil {
				o.reject(batch, err)
				return
			}
		}
		buf := o.wbuf[:0]
		n := 0
		for n < len(batch) && (n == 0 || o.woff+int64(len(buf)+len(batch[n].frame)) <= o.opts.SegmentBytes) {
			sealFrame(batch[n].frame, o.nextID+ID(n), now)
			buf = append(buf, batch[n].frame...)
			n++
		}
		o.wbuf = buf
		if err := o.writeChunk(buf, n); err != nil {
			o.reject(batch, err)
			return
		}
		for i, req := range batch[:n] {
			req.done <- appendResult{id: o.nextID - ID(n-i)}
		}
		batch = batch[n:]
	}
	if cap(o.wbuf) > maxBatchBytes*2 {
		o.wbuf = nil // do not pin the memory of one huge batch
	}
}

// writeChunk appends count encoded frames to the active segment, syncs and
// publishes them.
func (o *Outbox) writeChunk(buf []byte, count int) error {
	if _, err := o.wf.WriteAt(buf, o.woff); err != nil {
		werr := fmt.Errorf("outbox: write %s: %w", o.active.path, err)
		// Cut the partial write so that the file ends on a frame boundary
		// again; a failed write (say, a full disk) is then harmless.
		if terr := o.wf.Truncate(o.woff); terr != nil {
			return o.fail(errors.Join(werr, terr))
		}
		return werr
	}
	switch {
	case o.opts.NoSync:
	case o.opts.SyncInterval > 0:
		o.dirty = true // synced by the writer's ticker, at most SyncInterval later
	default:
		if err := o.syncActive(); err != nil {
			// After a failed fsync the page cache may no longer hold what
			// was written; nothing written since can be trusted.
			return o.fail(fmt.Errorf("outbox: sync %s: %w", o.active.path, err))
		}
	}
	o.woff += int64(len(buf))
	o.nextID += ID(count)

	o.mu.Lock()
	o.active.size = o.woff
	o.active.last = o.nextID - 1
	o.lastID = o.nextID - 1
	o.depth += int64(count)
	o.bytes += int64(len(buf))
	close(o.notify)
	o.notify = make(chan struct{})
	o.mu.Unlock()
	return nil
}

// syncDirty fdatasyncs the active segment when something was written to it
// since its last sync (SyncInterval mode). Only the writer calls it.
func (o *Outbox) syncDirty() {
	if !o.dirty {
		return
	}
	o.dirty = false
	if err := o.syncActive(); err != nil {
		_ = o.fail(fmt.Errorf("outbox: sync %s: %w", o.active.path, err))
	}
}

// syncActive fdatasyncs the active segment file.
func (o *Outbox) syncActive() error {
	err := datasync(o.wf)
	if o.opts.onSync != nil {
		o.opts.onSync()
	}
	return err
}

// reject fails requests, giving back what they reserved.
func (o *Outbox) reject(batch []*appendReq, err error) {
	for _, req := range batch {
		o.reserved.Add(-int64(len(req.frame)))
		req.done <- appendResult{err: err}
	}
}

// roll seals the active segment and starts a new one named after the next
// id. The old segment is synced if it has unsynced chunks (SyncInterval);
// otherwise each chunk was synced before its callers were answered.
func (o *Outbox) roll() error {
	base := o.nextID
	path := filepath.Join(o.dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("outbox: create segment: %w", err)
	}
	// The directory entry must be durable before any record in the file is
	// reported durable.
	if !o.opts.NoSync {
		if err := syncDir(o.dir); err != nil {
			_ = f.Close()
			_ = os.Remove(path)
			return fmt.Errorf("outbox: create segment: sync dir: %w", err)
		}
	}
	// In SyncInterval mode the old segment may hold unsynced records; the
	// ticker only syncs the active one.
	o.syncDirty()
	old := o.wf
	seg := &segment{base: base, path: path, last: base - 1}
	o.mu.Lock()
	o.active.sealed = true
	o.segs = append(o.segs, seg)
	o.mu.Unlock()
	o.wf, o.woff, o.active = f, 0, seg
	if err := old.Close(); err != nil {
		o.log.Warn("outbox segment close failed", "error", err)
	}
	return nil
}
