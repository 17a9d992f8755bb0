package events

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// TestStoreBudget: past its byte budget the store forgets the oldest keys
// first, and an entry pushed out while in flight is not resurrected.
func TestStoreBudget(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	s := newStore(time.Hour, 10*entryOverhead, func() time.Time { return now })
	resp := &stockv1.SetStockLevelResponse{Item: &stockv1.StockItem{ProductId: 1}}
	digest := sha256.Sum256(nil)
	var inFlight *entry
	for i := range 20 {
		e, v := s.begin("m", fmt.Sprint(i), &digest)
		if got, want := v, verdictRun; got != want {
			t.Fatalf("key %d: verdict %v, want %v", i, got, want)
		}
		if i == 0 {
			inFlight = e
			continue
		}
		s.finish(e, resp, "id", nil)
	}
	n, b := s.len()
	if b > 10*entryOverhead {
		t.Errorf("store holds %d bytes in %d entries, budget %d", b, n, 10*entryOverhead)
	}
	s.finish(inFlight, resp, "id", nil)
	cases := []struct {
		key  string
		want verdict
	}{
		{"0", verdictRun},     // evicted while in flight
		{"1", verdictRun},     // evicted
		{"19", verdictReplay}, // newest, kept
	}
	for _, tc := range cases {
		t.Run("key "+tc.key, func(t *testing.T) {
			if _, got := s.begin("m", tc.key, &digest); got != tc.want {
				t.Errorf("verdict: got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestStoreAbort: an aborted key can be used again at once.
func TestStoreAbort(t *testing.T) {
	t.Parallel()
	s := newStore(time.Hour, DefaultIdempotencyMaxBytes, time.Now)
	digest := sha256.Sum256([]byte("a"))
	e, _ := s.begin("m", "k", &digest)
	if _, got := s.begin("m", "k", &digest); got != verdictInFlight {
		t.Fatalf("second begin: got %v, want in flight", got)
	}
	s.abort(e)
	if _, got := s.begin("m", "k", &digest); got != verdictRun {
		t.Errorf("after abort: got %v, want run", got)
	}
	if n, _ := s.len(); n != 1 {
		t.Errorf("entries: got %d, want 1", n)
	}
}
