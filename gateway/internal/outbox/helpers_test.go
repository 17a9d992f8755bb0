package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"
)

// openTB opens an outbox in dir and closes it when the test ends.
func openTB(tb testing.TB, dir string, opts Options) *Outbox {
	tb.Helper()
	o, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := o.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return o
}

// testRecord is record i of a test: its value names it. Records below a
// million all have the same size.
func testRecord(i int) Record {
	s := fmt.Sprintf("%06d", i)
	return Record{
		Topic:   "shop.test.v1",
		Key:     []byte("key-" + strconv.Itoa(i%7)),
		Headers: []Header{{Key: []byte("ce_id"), Value: []byte("id-" + s)}},
		Value:   []byte("value-" + s),
	}
}

// appendN appends records first..first+n-1 and returns their ids.
func appendN(tb testing.TB, o *Outbox, first, n int) []ID {
	tb.Helper()
	ids := make([]ID, 0, n)
	for i := first; i < first+n; i++ {
		id, err := o.Append(context.Background(), testRecord(i))
		if err != nil {
			tb.Fatalf("Append(%d): %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// nextN reads exactly n entries, failing after a few seconds.
func nextN(tb testing.TB, o *Outbox, n int) []Entry {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []Entry
	for len(out) < n {
		es, err := o.Next(ctx, n-len(out))
		if err != nil {
			tb.Fatalf("Next after %d of %d entries: %v", len(out), n, err)
		}
		out = append(out, es...)
	}
	return out
}

// expectEmpty checks that Next has nothing to deliver.
func expectEmpty(tb testing.TB, o *Outbox) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	es, err := o.Next(ctx, 10)
	if !errors.Is(err, context.DeadlineExceeded) {
		tb.Fatalf("Next = %d entries, %v; want none and a deadline error", len(es), err)
	}
}

// checkEntries checks that es are records first.. in order with
// consecutive ids starting at firstID.
func checkEntries(tb testing.TB, es []Entry, firstID ID, first int) {
	tb.Helper()
	for i, e := range es {
		if got, want := e.ID, firstID+ID(i); got != want {
			tb.Fatalf("entry %d: id = %d, want %d", i, got, want)
		}
		if got, want := string(e.Value), string(testRecord(first+i).Value); got != want {
			tb.Fatalf("entry %d: value = %q, want %q", i, got, want)
		}
	}
}
