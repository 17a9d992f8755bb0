package outbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// lastSegment returns the path of the newest segment file in dir.
func lastSegment(tb testing.TB, dir string) string {
	tb.Helper()
	m := mustGlob(tb, dir)
	if len(m) == 0 {
		tb.Fatal("no segment files")
	}
	return m[len(m)-1] // names sort by base id
}

func appendToFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

func flipByte(tb testing.TB, path string, off int64) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	b[off] ^= 0x55
	if err := os.WriteFile(path, b, 0o640); err != nil {
		tb.Fatal(err)
	}
}

// writeClosed appends n records to a fresh outbox in dir, reads and acks
// the first acked of them, and closes it.
func writeClosed(tb testing.TB, dir string, opts Options, n, acked int) {
	tb.Helper()
	o, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	appendN(tb, o, 0, n)
	nextN(tb, o, acked)
	if err := o.Ack(ID(acked)); err != nil {
		tb.Fatalf("Ack: %v", err)
	}
	if err := o.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func TestTornTail(t *testing.T) {
	t.Parallel()
	full := encodeForTest(t, testRecord(10), 11, 1)
	tests := []struct {
		name string
		tail []byte
	}{
		{name: "half header", tail: full[:5]},
		{name: "header only", tail: full[:frameHeaderSize]},
		{name: "half record", tail: full[:len(full)/2]},
		{name: "all but one byte", tail: full[:len(full)-1]},
		{name: "zeros", tail: make([]byte, 300)},
		{name: "garbage", tail: []byte("\x13\x37garbage that is not a record at all\xff\xfe")},
		{name: "whole record with a bad checksum", tail: func() []byte {
			b := append([]byte(nil), full...)
			b[len(b)-1] ^= 1
			return b
		}()},
		{name: "record with a wrong id", tail: encodeForTest(t, testRecord(10), 99, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeClosed(t, dir, Options{}, 10, 0)
			path := lastSegment(t, dir)
			before, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			appendToFile(t, path, tt.tail)

			o := openTB(t, dir, Options{})
			after, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := after.Size(), before.Size(); got != want {
				t.Errorf("segment size after recovery = %d, want %d (torn tail cut)", got, want)
			}
			checkEntries(t, nextN(t, o, 10), 1, 0)
			expectEmpty(t, o)
			ids := appendN(t, o, 10, 1)
			if got, want := ids[0], ID(11); got != want {
				t.Errorf("next id = %d, want %d", got, want)
			}
			checkEntries(t, nextN(t, o, 1), 11, 10)
		})
	}
}

func TestCorruption(t *testing.T) {
	t.Parallel()
	frame := int64(frameHeaderSize + payloadSize(new(testRecord(0))))
	tests := []struct {
		name string
		// damage breaks the files in dir, which holds 40 records.
		damage  func(tb testing.TB, dir string)
		segSize int64
		// wantRecords is how many records must survive when recovery may
		// go on; zero means Open must refuse with ErrCorrupt.
		wantRecords int
	}{
		{
			name:   "checksum failure followed by valid records",
			damage: func(tb testing.TB, dir string) { flipByte(tb, lastSegment(tb, dir), 5*frame+20) },
		},
		{
			name:   "length failure followed by valid records",
			damage: func(tb testing.TB, dir string) { flipByte(tb, lastSegment(tb, dir), 5*frame+1) },
		},
		{
			name:    "damage in a sealed segment",
			segSize: 1024,
			damage:  func(tb testing.TB, dir string) { flipByte(tb, mustGlob(tb, dir)[0], frame+20) },
		},
		{
			name:    "sealed segment missing",
			segSize: 1024,
			damage: func(tb testing.TB, dir string) {
				if err := os.Remove(mustGlob(tb, dir)[1]); err != nil {
					tb.Fatal(err)
				}
			},
		},
		{
			name:        "checksum failure in the last record is a torn write",
			damage:      func(tb testing.TB, dir string) { flipByte(tb, lastSegment(tb, dir), 40*frame-2) },
			wantRecords: 39,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := Options{SegmentBytes: tt.segSize}
			writeClosed(t, dir, opts, 40, 0)
			tt.damage(t, dir)
			o, err := Open(dir, opts)
			if tt.wantRecords == 0 {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer o.Close()
			checkEntries(t, nextN(t, o, tt.wantRecords), 1, 0)
			expectEmpty(t, o)
		})
	}
}

func TestCursorDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeClosed(t, dir, Options{}, 10, 6)
	if got, err := readCursor(dir); err != nil || got != 6 {
		t.Fatalf("readCursor = %d, %v; want 6", got, err)
	}
	flipByte(t, filepath.Join(dir, cursorName), 6)
	// A lost cursor costs duplicates, never records.
	o := openTB(t, dir, Options{})
	checkEntries(t, nextN(t, o, 10), 1, 0)
}

func TestAckedSegmentsDeletedOnOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024}
	// Close persists the cursor; its last round may or may not delete.
	writeClosed(t, dir, opts, 100, 100)
	o := openTB(t, dir, opts)
	waitFor(t, func() bool { return len(mustGlob(t, dir)) == 1 })
	if _, err := o.Append(context.Background(), testRecord(100)); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, nextN(t, o, 1), 101, 100)
}
