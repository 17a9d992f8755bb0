// Package logbuf buffers the gateway's log output, so that a busy gateway
// does not make one write system call per access-log line: lines collect
// in memory and reach the underlying writer when the buffer fills, every
// FlushInterval, at once for a warning or an error, and on Close.
package logbuf

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults of [Config].
const (
	// DefaultSize is the buffer size: about 200 access-log lines.
	DefaultSize = 64 << 10
	// DefaultFlushInterval bounds how long a line waits in the buffer.
	DefaultFlushInterval = 100 * time.Millisecond
)

// Config configures a [Writer].
type Config struct {
	// Size is the buffer size in bytes; a full buffer is written out at
	// once. Default 64 KiB.
	Size int
	// FlushInterval is the longest a line waits in the buffer before it is
	// written out. Default 100 ms. A negative value turns buffering off:
	// every write goes straight through.
	FlushInterval time.Duration
}

func (c *Config) setDefaults() {
	c.Size = cmp.Or(c.Size, DefaultSize)
	c.FlushInterval = cmp.Or(c.FlushInterval, DefaultFlushInterval)
}

// Validate reports a negative size.
func (c Config) Validate() error {
	if c.Size < 0 {
		return errors.New("logbuf: negative buffer size")
	}
	return nil
}

// Writer is an io.Writer that buffers what it is given and writes it to the
// underlying writer in large pieces. It is safe for concurrent use. Close it
// to write out what is left; after Close, writes go straight through.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    *bufio.Writer // nil when unbuffered or closed.
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// New returns a Writer in front of out and starts its periodic flush.
func New(out io.Writer, cfg Config) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	w := &Writer{out: out}
	if cfg.FlushInterval < 0 {
		w.closed = true
		return w, nil
	}
	w.buf = bufio.NewWriterSize(out, cfg.Size)
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.flushEvery(cfg.FlushInterval)
	return w, nil
}

// Write buffers p. A line never straddles two writes to the underlying
// writer unless it is larger than the buffer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		return w.out.Write(p)
	}
	if len(p) > w.buf.Available() && w.buf.Buffered() > 0 {
		if err := w.buf.Flush(); err != nil {
			w.buf.Reset(w.out) // Drop what failed rather than fail every later line.
		}
	}
	return w.buf.Write(p)
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf == nil {
		return nil
	}
	return w.buf.Flush()
}

// Close stops the periodic flush and writes out what is buffered. Later
// writes go straight to the underlying writer. Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.buf.Flush()
	w.buf = nil
	return err
}

func (w *Writer) flushEvery(d time.Duration) {
	defer close(w.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if w.buf.Buffered() > 0 {
				_ = w.buf.Flush()
			}
			w.mu.Unlock()
		}
	}
}

// Handler wraps h, which writes to w, so that a record at level Warn or
// above is written out at once, with every line buffered before it: a
// warning or an error is never held back behind the flush interval.
func Handler(h slog.Handler, w *Writer) slog.Handler {
	return &handler{next: h, w: w}
}

type handler struct {
	next slog.Handler
	w    *Writer
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		_ = h.w.Flush()
	}
	return err
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{next: h.next.WithAttrs(attrs), w: h.w}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), w: h.w}
}
