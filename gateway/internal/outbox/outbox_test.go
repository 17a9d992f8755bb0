package outbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestAppendNextAck(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{})
	ids := appendN(t, o, 0, 10)
	for i, id := range ids {
		if got, want := id, ID(i+1); got != want {
			t.Fatalf("id %d = %d, want %d", i, got, want)
		}
	}
	first := nextN(t, o, 4)
	checkEntries(t, first, 1, 0)
	if got, want := first[0].Record.Topic, "shop.test.v1"; got != want {
		t.Errorf("topic = %q, want %q", got, want)
	}
	if err := o.Ack(4); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	rest := nextN(t, o, 6)
	checkEntries(t, rest, 5, 4)
	expectEmpty(t, o)

	st := o.Stats()
	if got, want := st.Depth, int64(6); got != want {
		t.Errorf("Depth = %d, want %d", got, want)
	}
	if err := o.Ack(10); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	st = o.Stats()
	if st.Depth != 0 || st.Bytes != 0 || st.AckedID != 10 || st.LastID != 10 {
		t.Errorf("Stats = %+v, want depth 0, bytes 0, acked 10, last 10", st)
	}
}

func TestAckErrors(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{})
	appendN(t, o, 0, 5)
	nextN(t, o, 3)
	tests := []struct {
		name    string
		upTo    ID
		wantErr bool
	}{
		{name: "zero is a no-op", upTo: 0},
		{name: "delivered", upTo: 2},
		{name: "again is a no-op", upTo: 1},
		{name: "not yet delivered", upTo: 4, wantErr: true},
	}
	for _, tt := range tests { // sequential: each case builds on the last
		t.Run(tt.name, func(t *testing.T) {
			if err := o.Ack(tt.upTo); (err != nil) != tt.wantErr {
				t.Errorf("Ack(%d) = %v, want error %t", tt.upTo, err, tt.wantErr)
			}
		})
	}
}

func TestRewind(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{SegmentBytes: 1024})
	appendN(t, o, 0, 50) // spans several segments
	nextN(t, o, 30)
	if err := o.Ack(12); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := o.Rewind(); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	es := nextN(t, o, 38)
	checkEntries(t, es, 13, 12)
	expectEmpty(t, o)

	// Rewind right after acking everything delivered: nothing comes back.
	if err := o.Ack(50); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	if err := o.Rewind(); err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	expectEmpty(t, o)
	appendN(t, o, 50, 1)
	checkEntries(t, nextN(t, o, 1), 51, 50)
}

func TestNextBlocksUntilAppend(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{})
	got := make(chan []Entry, 1)
	go func() {
		es, err := o.Next(context.Background(), 10)
		if err != nil {
			t.Errorf("Next: %v", err)
		}
		got <- es
	}()
	time.Sleep(10 * time.Millisecond)
	appendN(t, o, 0, 1)
	select {
	case es := <-got:
		checkEntries(t, es, 1, 0)
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not wake up after Append")
	}
}

func TestReopen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		segBytes  int64
		appended  int
		acked     int
		wantFirst ID
	}{
		{name: "nothing acked", appended: 20, acked: 0, wantFirst: 1},
		{name: "some acked", appended: 20, acked: 7, wantFirst: 8},
		{name: "all acked", appended: 20, acked: 20, wantFirst: 21},
		{name: "some acked across segments", segBytes: 1024, appended: 100, acked: 61, wantFirst: 62},
		{name: "all acked across segments", segBytes: 1024, appended: 100, acked: 100, wantFirst: 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := Options{SegmentBytes: tt.segBytes}
			writeClosed(t, dir, opts, tt.appended, tt.acked)

			o := openTB(t, dir, opts)
			st := o.Stats()
			if got, want := st.Depth, int64(tt.appended-tt.acked); got != want {
				t.Errorf("Depth after reopen = %d, want %d", got, want)
			}
			if got, want := st.AckedID, ID(tt.acked); got != want {
				t.Errorf("AckedID after reopen = %d, want %d", got, want)
			}
			es := nextN(t, o, tt.appended-tt.acked)
			checkEntries(t, es, tt.wantFirst, tt.acked)
			expectEmpty(t, o)
			// Ids go on where they stopped.
			ids := appendN(t, o, tt.appended, 1)
			if got, want := ids[0], ID(tt.appended+1); got != want {
				t.Errorf("id after reopen = %d, want %d", got, want)
			}
		})
	}
}

func TestFull(t *testing.T) {
	t.Parallel()
	frame := int64(frameHeaderSize + payloadSize(new(testRecord(0))))
	tests := []struct {
		name       string
		headroom   int64
		wantAdmits int // records appended before Admit refuses
	}{
		{name: "no headroom", headroom: -1, wantAdmits: 10},
		{name: "headroom of three records", headroom: 3 * frame, wantAdmits: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := openTB(t, t.TempDir(), Options{MaxBytes: 10 * frame, Headroom: tt.headroom})
			admitted := 0
			for o.Admit() == nil {
				appendN(t, o, admitted, 1)
				admitted++
				if admitted > 100 {
					t.Fatal("Admit never refused")
				}
			}
			if got, want := admitted, tt.wantAdmits; got != want {
				t.Errorf("admitted %d records, want %d", got, want)
			}
			if err := o.Admit(); !errors.Is(err, ErrFull) {
				t.Errorf("Admit = %v, want ErrFull", err)
			}
			if !o.Stats().Full {
				t.Error("Stats.Full = false, want true")
			}
			// Append still takes records until MaxBytes itself.
			appendN(t, o, admitted, 10-admitted)
			if _, err := o.Append(context.Background(), testRecord(10)); !errors.Is(err, ErrFull) {
				t.Fatalf("Append at the cap = %v, want ErrFull", err)
			}
			// Acking frees room.
			nextN(t, o, 5)
			if err := o.Ack(5); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			if err := o.Admit(); err != nil {
				t.Errorf("Admit after ack = %v, want nil", err)
			}
			appendN(t, o, 10, 5)
		})
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{MaxRecordBytes: 100})
	_, err := o.Append(context.Background(), Record{Topic: "t", Value: make([]byte, 100)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append = %v, want ErrTooLarge", err)
	}
	if got := o.Stats().Bytes; got != 0 {
		t.Errorf("Bytes = %d, want 0", got)
	}
}

func TestSegmentRolloverAndDeletion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{SegmentBytes: 1024, AckInterval: time.Millisecond}
	o := openTB(t, dir, opts)
	appendN(t, o, 0, 200)
	segs := func() int {
		m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	n := segs()
	if n < 10 {
		t.Fatalf("%d segment files after 200 records of 1 KiB segments, want at least 10", n)
	}
	for _, m := range mustGlob(t, dir) {
		if fi, err := os.Stat(m); err != nil || fi.Size() > opts.SegmentBytes {
			t.Fatalf("segment %s: size %d, err %v; want at most %d", m, fi.Size(), err, opts.SegmentBytes)
		}
	}
	checkEntries(t, nextN(t, o, 120), 1, 0)
	if err := o.Ack(120); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	// Files go a moment after they leave Stats.
	waitFor(t, func() bool { return segs() < n/2+2 && segs() == o.Stats().Segments })
	checkEntries(t, nextN(t, o, 80), 121, 120)
	if err := o.Ack(200); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	// The active segment always stays.
	waitFor(t, func() bool { return segs() == 1 })
}

func mustGlob(tb testing.TB, dir string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not reached in 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestConcurrentAppend has 64 goroutines append 500 records each while a
// consumer reads and acks: every record must come out exactly once, in id
// order.
func TestConcurrentAppend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{"commit at once", 0},
		{"commit delay", time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testConcurrentAppend(t, Options{SegmentBytes: 64 << 10, AckInterval: 5 * time.Millisecond, CommitDelay: tc.delay})
		})
	}
}

func testConcurrentAppend(t *testing.T, opts Options) {
	const writers, perWriter = 64, 500
	o := openTB(t, t.TempDir(), opts)

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				rec := Record{Topic: "t", Key: []byte(strconv.Itoa(w)), Value: []byte(strconv.Itoa(w*perWriter + i))}
				if _, err := o.Append(context.Background(), rec); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}

	seen := make([]bool, writers*perWriter)
	lastPerWriter := make([]int, writers)
	for i := range lastPerWriter {
		lastPerWriter[i] = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var next ID = 1
	for n := 0; n < writers*perWriter; {
		es, err := o.Next(ctx, 1000)
		if err != nil {
			t.Fatalf("Next after %d records: %v", n, err)
		}
		for _, e := range es {
			if e.ID != next {
				t.Fatalf("id = %d, want %d", e.ID, next)
			}
			next++
			v, err := strconv.Atoi(string(e.Value))
			if err != nil || seen[v] {
				t.Fatalf("record %q: duplicate or unparsable (%v)", e.Value, err)
			}
			seen[v] = true
			// One writer's records keep their order.
			w := v / perWriter
			if v <= lastPerWriter[w] {
				t.Fatalf("writer %d: record %d after %d", w, v, lastPerWriter[w])
			}
			lastPerWriter[w] = v
		}
		n += len(es)
		if err := o.Ack(next - 1); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	wg.Wait()
	expectEmpty(t, o)
	if st := o.Stats(); st.Depth != 0 || st.Bytes != 0 {
		t.Errorf("Stats = %+v, want depth and bytes 0", st)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	o, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	appendN(t, o, 0, 3)
	blocked := make(chan error, 1)
	go func() {
		nextN(t, o, 3)
		_, err := o.Next(context.Background(), 1)
		blocked <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Errorf("blocked Next = %v, want ErrClosed", err)
	}
	if _, err := o.Append(context.Background(), testRecord(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append = %v, want ErrClosed", err)
	}
	if err := o.Admit(); !errors.Is(err, ErrClosed) {
		t.Errorf("Admit = %v, want ErrClosed", err)
	}
	if err := o.Ack(1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack = %v, want ErrClosed", err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestAppendContextCanceled(t *testing.T) {
	t.Parallel()
	o := openTB(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := o.Append(ctx, testRecord(0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Append = %v, want context.Canceled", err)
	}
	if got := o.Stats().Depth; got != 0 {
		t.Errorf("Depth = %d, want 0", got)
	}
}

func TestLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openTB(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{name: "zero value", opts: Options{}},
		{name: "small segments", opts: Options{SegmentBytes: 1024}},
		{name: "negative max bytes", opts: Options{MaxBytes: -1}, wantErr: true},
		{name: "tiny segments", opts: Options{SegmentBytes: 100}, wantErr: true},
		{name: "record larger than segment", opts: Options{SegmentBytes: 4096, MaxRecordBytes: 5000}, wantErr: true},
		{name: "headroom above cap", opts: Options{MaxBytes: 100, Headroom: 200}, wantErr: true},
		{name: "negative ack interval", opts: Options{AckInterval: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.setDefaults()
			if err := opts.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate = %v, want error %t", err, tt.wantErr)
			}
		})
	}
}
