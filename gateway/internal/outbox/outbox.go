// Package outbox is a durable, local, append-only queue of records waiting
// to be published: the gateway appends an event before it answers a
// mutation, and the relay reads, publishes and acks it. A record whose
// Append returned nil survives a crash of the process or the machine, and
// stays until it is acked.
//
// Records live in segment files of checksummed frames. Appends from many
// goroutines are group-committed: one writer goroutine writes each batch
// with one write and one fdatasync, then releases all of its callers. The
// read side (Next, Ack, Rewind) is meant for a single consumer.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

const (
	lockName = "LOCK"
	// A batch is bounded so that one slow fsync does not build up an
	// unbounded write, and so that the waiters of a batch are released
	// while the next one queues.
	maxBatchRecords = 4096
	maxBatchBytes   = 4 << 20
	// queueLen is how many appends may wait for the writer.
	queueLen = 4096
)

// Outbox is a durable append-only queue in one directory. It is safe for
// concurrent use; see the package doc for the single-consumer read side.
type Outbox struct {
	dir        string
	opts       Options
	log        *slog.Logger
	admitLimit int64
	lock       *os.File

	// reserved is the un-acked data in bytes including appends not yet
	// committed: what MaxBytes caps.
	reserved atomic.Int64
	failed   atomic.Pointer[error]
	closing  atomic.Bool

	closeMu sync.RWMutex // held shared while sending to reqs
	closed  bool
	reqs    chan *appendReq

	writerDone chan struct{}
	dirty      bool // written since the last sync (SyncInterval); writer only
	stopBg     chan struct{}
	bgDone     chan struct{}

	// Writer goroutine only.
	wf     *os.File
	woff   int64
	nextID ID
	active *segment
	wbuf   []byte

	mu     sync.Mutex
	segs   []*segment
	lastID ID
	ackID  ID
	depth  int64
	bytes  int64
	notify chan struct{} // closed and replaced when records commit
	shut   bool

	// Background goroutine only.
	persisted  ID
	persistErr bool

	rd reader // guarded by readMu
	// readMu serializes the consumer: Next, Ack and Rewind.
	readMu sync.Mutex
}

type appendReq struct {
	frame []byte
	done  chan appendResult
}

type appendResult struct {
	id  ID
	err error
}

var reqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan appendResult, 1)} }}

// Stats is a snapshot of the outbox for readiness and metrics.
type Stats struct {
	// Depth is the number of committed records not yet acked.
	Depth int64
	// Bytes is the framed size of those records on disk.
	Bytes int64
	// MaxBytes is the configured cap on un-acked bytes.
	MaxBytes int64
	// Segments is the number of segment files, acked ones not yet deleted
	// included.
	Segments int
	// LastID is the id of the last committed record (zero when none ever).
	LastID ID
	// AckedID is the id up to which every record is acked.
	AckedID ID
	// Full reports that Admit refuses new work.
	Full bool
}

// Open opens the outbox in dir, creating the directory if needed, and
// recovers it: it validates every segment, truncates a record torn by a
// crash in the middle of a write at the end of the last segment, and
// restores the ack cursor. It returns ErrCorrupt for damage a crash cannot
// explain and ErrLocked when another process has the directory open.
func Open(dir string, opts Options) (*Outbox, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("outbox: create dir: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, err
	}
	o := &Outbox{
		dir:        dir,
		opts:       opts,
		log:        opts.Logger.With(slog.String("outbox_dir", dir)),
		admitLimit: opts.MaxBytes - opts.Headroom,
		lock:       lock,
		reqs:       make(chan *appendReq, queueLen),
		writerDone: make(chan struct{}),
		stopBg:     make(chan struct{}),
		bgDone:     make(chan struct{}),
		notify:     make(chan struct{}),
	}
	if err := o.recover(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	go o.writeLoop()
	go o.background()
	return o, nil
}

// Admit reports without I/O whether a new mutation may go ahead: ErrFull
// once the un-acked data reaches MaxBytes minus Headroom, the write failure
// (wrapping ErrFailed) after one, and ErrClosed after Close.
func (o *Outbox) Admit() error {
	if f := o.failed.Load(); f != nil {
		return *f
	}
	if o.closing.Load() {
		return ErrClosed
	}
	if o.reserved.Load() >= o.admitLimit {
		return ErrFull
	}
	return nil
}

// Append stores rec and returns its id once it is durably on disk (written
// and fsynced, shared with the concurrent appends of the same batch). It
// returns ErrFull when rec would take the un-acked data past MaxBytes,
// ErrTooLarge for a record over MaxRecordBytes, ErrClosed after Close and an
// error wrapping ErrFailed after a write failure.
//
// When ctx ends first Append returns its error, but a record already handed
// to the writer may still be committed and delivered: an error means "not
// known to be durable", not "absent".
func (o *Outbox) Append(ctx context.Context, rec Record) (ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("outbox: append: %w", err)
	}
	n := payloadSize(&rec)
	if n > o.opts.MaxRecordBytes {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, o.opts.MaxRecordBytes)
	}
	if f := o.failed.Load(); f != nil {
		return 0, *f
	}
	size := int64(frameHeaderSize + n)
	if o.reserved.Add(size) > o.opts.MaxBytes {
		o.reserved.Add(-size)
		return 0, ErrFull
	}
	req := reqPool.Get().(*appendReq)
	req.frame = appendFrame(req.frame[:0], &rec, n)

	o.closeMu.RLock()
	if o.closed {
		o.closeMu.RUnlock()
		o.reserved.Add(-size)
		reqPool.Put(req)
		return 0, ErrClosed
	}
	select {
	case o.reqs <- req:
		o.closeMu.RUnlock()
	case <-ctx.Done():
		o.closeMu.RUnlock()
		o.reserved.Add(-size)
		reqPool.Put(req)
		return 0, fmt.Errorf("outbox: append: %w", ctx.Err())
	}

	select {
	case res := <-req.done:
		if cap(req.frame) <= 64<<10 {
			reqPool.Put(req)
		}
		return res.id, res.err
	case <-ctx.Done():
		// The writer still owns req and will send to its buffered channel;
		// leave it to the garbage collector.
		return 0, fmt.Errorf("outbox: append: %w", ctx.Err())
	}
}

// Stats returns a snapshot of the outbox.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return Stats{
		Depth:    o.depth,
		Bytes:    o.bytes,
		MaxBytes: o.opts.MaxBytes,
		Segments: len(o.segs),
		LastID:   o.lastID,
		AckedID:  o.ackID,
		Full:     o.reserved.Load() >= o.admitLimit,
	}
}

// Close waits for the appends already queued to be committed, persists the
// ack cursor and releases the directory. Appends then return ErrClosed and
// a blocked Next returns ErrClosed. Close is idempotent.
func (o *Outbox) Close() error {
	o.closeMu.Lock()
	if o.closed {
		o.closeMu.Unlock()
		return nil
	}
	o.closed = true
	o.closing.Store(true)
	close(o.reqs)
	o.closeMu.Unlock()

	<-o.writerDone

	o.mu.Lock()
	o.shut = true
	close(o.notify)
	o.mu.Unlock()

	// Taking readMu waits out an Ack in progress, so that the last round
	// of the background goroutine persists it.
	o.readMu.Lock()
	o.rd.closeFile()
	o.readMu.Unlock()

	close(o.stopBg)
	<-o.bgDone

	var errs []error
	if o.persistErr {
		errs = append(errs, fmt.Errorf("outbox: ack cursor not persisted on close"))
	}
	if err := o.wf.Close(); err != nil {
		errs = append(errs, fmt.Errorf("outbox: close segment: %w", err))
	}
	if err := o.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("outbox: release lock: %w", err))
	}
	return errors.Join(errs...)
}

// background persists the ack cursor every AckInterval and deletes the
// segments it makes obsolete; it does a last round on Close.
func (o *Outbox) background() {
	defer close(o.bgDone)
	t := time.NewTicker(o.opts.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			o.persistAck()
		case <-o.stopBg:
			o.persistAck()
			return
		}
	}
}

func (o *Outbox) persistAck() {
	o.mu.Lock()
	ack := o.ackID
	o.mu.Unlock()
	if ack != o.persisted {
		if err := writeCursor(o.dir, ack, !o.opts.NoSync); err != nil {
			if !o.persistErr {
				o.log.Error("outbox ack cursor not persisted, acked records will be delivered again after a restart", slog.Any("error", err))
			}
			o.persistErr = true
			return
		}
		if o.persistErr {
			o.log.Info("outbox ack cursor persisted again")
		}
		o.persistErr = false
		o.persisted = ack
	}
	o.deleteAcked(o.persisted)
}

// deleteAcked removes the sealed segments that hold nothing after ack. It
// goes by the persisted cursor: should the cursor be lost, a stale one still
// points at records that exist.
func (o *Outbox) deleteAcked(ack ID) {
	o.mu.Lock()
	n := 0
	for n < len(o.segs)-1 && o.segs[n].sealed && o.segs[n].last <= ack {
		n++
	}
	if n == 0 {
		o.mu.Unlock()
		return
	}
	dead := append([]*segment(nil), o.segs[:n]...)
	o.segs = append(o.segs[:0], o.segs[n:]...)
	o.mu.Unlock()
	for _, s := range dead {
		if err := os.Remove(s.path); err != nil {
			o.log.Warn("outbox segment not deleted", slog.String("path", s.path), slog.Any("error", err))
		}
	}
}

// fail makes err sticky: every later Append and Admit returns it.
func (o *Outbox) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	if o.failed.CompareAndSwap(nil, &err) {
		o.log.Error("outbox write failed, appends refused until reopened", slog.Any("error", err))
	}
	return *o.failed.Load()
}
