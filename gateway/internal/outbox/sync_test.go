package outbox

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// openCounting opens an outbox in a temp dir whose writer counts its
// segment fdatasyncs in the returned counter.
func openCounting(t *testing.T, opts Options) (*Outbox, *atomic.Int64) {
	t.Helper()
	var syncs atomic.Int64
	opts.onSync = func() { syncs.Add(1) }
	o, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o, &syncs
}

// TestAlwaysSyncsBeforeAck proves that under the "always" policy (no
// SyncInterval, no NoSync) every Append returns only after a segment sync
// that began after the append was made, for a lone appender and for
// concurrent ones whose records share batches.
func TestAlwaysSyncsBeforeAck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		appenders, perWorker int
		commitDelay          time.Duration
	}{
		{name: "sequential", appenders: 1, perWorker: 50},
		{name: "concurrent", appenders: 8, perWorker: 50},
		{name: "concurrent with commit delay", appenders: 8, perWorker: 50, commitDelay: 200 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, syncs := openCounting(t, Options{CommitDelay: tc.commitDelay})
			var wg sync.WaitGroup
			for w := range tc.appenders {
				wg.Go(func() {
					for i := range tc.perWorker {
						before := syncs.Load()
						if _, err := o.Append(context.Background(), testRecord(w*tc.perWorker+i)); err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						if after := syncs.Load(); after <= before {
							t.Errorf("Append of record %d acknowledged with %d syncs before and after it; want a sync of its batch first", w*tc.perWorker+i, after)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := o.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, total := syncs.Load(), int64(tc.appenders*tc.perWorker); n < 1 || n > total {
				t.Fatalf("%d syncs for %d appends; want between 1 and one per append", n, total)
			}
		})
	}
}

// TestNoSyncNeverSyncs proves that NoSync answers appends and closes
// without a single segment sync.
func TestNoSyncNeverSyncs(t *testing.T) {
	t.Parallel()
	o, syncs := openCounting(t, Options{NoSync: true, SyncInterval: time.Millisecond})
	appendN(t, o, 0, 20)
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("NoSync: %d segment syncs, want 0", n)
	}
}

// TestSyncIntervalDefersSyncToTickOrClose proves that under SyncInterval
// appends are answered before any sync, and that what they wrote is synced
// once when the outbox closes.
func TestSyncIntervalDefersSyncToTickOrClose(t *testing.T) {
	t.Parallel()
	o, syncs := openCounting(t, Options{SyncInterval: time.Hour})
	appendN(t, o, 0, 20)
	if n := syncs.Load(); n != 0 {
		t.Fatalf("SyncInterval: %d syncs before the first tick, want 0", n)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := syncs.Load(); n != 1 {
		t.Fatalf("SyncInterval: %d syncs after Close, want 1 for the unsynced writes", n)
	}
}
