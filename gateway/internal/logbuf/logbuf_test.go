package logbuf

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sink records every write it is given, as the system calls would be.
type sink struct {
	mu     sync.Mutex
	writes []string
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) get() (writes int, all string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes), strings.Join(s.writes, "")
}

func newWriter(t *testing.T, out io.Writer, cfg Config) *Writer {
	t.Helper()
	w, err := New(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// waitFor polls cond for up to 10 s: the flusher runs on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriterBuffersUntilClose(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := newWriter(t, out, Config{FlushInterval: time.Hour})
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if n, _ := out.get(); n != 0 {
		t.Fatalf("got %d writes before Close, want 0 (buffered)", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, all := out.get()
	if got, want := n, 1; got != want {
		t.Errorf("writes after Close: got %d, want %d", got, want)
	}
	if got, want := strings.Count(all, "\n"), 100; got != want {
		t.Errorf("lines after Close: got %d, want %d", got, want)
	}
	fmt.Fprintf(w, "after close\n")
	if _, all := out.get(); !strings.HasSuffix(all, "after close\n") {
		t.Errorf("a write after Close did not go straight through: %q", all)
	}
}

func TestWriterFlushesOnInterval(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := newWriter(t, out, Config{FlushInterval: 10 * time.Millisecond})
	fmt.Fprintf(w, "one\n")
	waitFor(t, "the periodic flush", func() bool { _, all := out.get(); return all == "one\n" })
}

func TestWriterFullBufferKeepsLinesWhole(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := newWriter(t, out, Config{Size: 64, FlushInterval: time.Hour})
	line := strings.Repeat("x", 20) + "\n"
	for range 10 {
		_, _ = io.WriteString(w, line)
	}
	_ = w.Close()
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.writes) < 3 {
		t.Fatalf("got %d writes, want the buffer to fill several times", len(out.writes))
	}
	for i, wr := range out.writes {
		if len(wr)%len(line) != 0 {
			t.Errorf("write %d splits a line: %q", i, wr)
		}
	}
}

func TestWriterUnbuffered(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := newWriter(t, out, Config{FlushInterval: -1})
	fmt.Fprintf(w, "a\n")
	fmt.Fprintf(w, "b\n")
	if n, _ := out.get(); n != 2 {
		t.Errorf("got %d writes, want 2 (unbuffered)", n)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := New(io.Discard, Config{Size: -1}); err == nil {
		t.Error("a negative size was accepted")
	}
}

func TestHandlerFlushesWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		level   slog.Level
		flushed bool
	}{
		{"info stays buffered", slog.LevelInfo, false},
		{"warn is written at once", slog.LevelWarn, true},
		{"error is written at once", slog.LevelError, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := &sink{}
			w := newWriter(t, out, Config{FlushInterval: time.Hour})
			log := slog.New(Handler(slog.NewJSONHandler(w, nil), w)).With("k", "v").WithGroup("g")
			log.Info("before")
			log.Log(t.Context(), tt.level, "msg")
			_, all := out.get()
			if got := strings.Contains(all, `"msg":"msg"`); got != tt.flushed {
				t.Errorf("written before Close: got %v, want %v (%q)", got, tt.flushed, all)
			}
			if tt.flushed && !strings.Contains(all, `"msg":"before"`) {
				t.Errorf("the lines buffered before the warning were not written first: %q", all)
			}
		})
	}
}

// BenchmarkWriter writes access-log-sized lines to a file through the
// Writer, buffered (the default) and unbuffered (one write system call per
// line, as the gateway logged before).
func BenchmarkWriter(b *testing.B) {
	line := []byte(`{"time":"2026-11-29T12:00:00Z","level":"INFO","msg":"access","protocol":"http","path":"/stock/1"}` + "\n")
	for _, tt := range []struct {
		name string
		cfg  Config
	}{{"buffered", Config{}}, {"unbuffered", Config{FlushInterval: -1}}} {
		b.Run(tt.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			w, _ := New(f, tt.cfg)
			defer w.Close()
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = w.Write(line)
				}
			})
		})
	}
}
