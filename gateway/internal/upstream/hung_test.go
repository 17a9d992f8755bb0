package upstream

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// hangable answers 200 until hung, then holds every request, health probes
// included, until the client gives up (as a SIGSTOPped process does).
type hangable struct{ hung atomic.Bool }

func (h *hangable) serve(w http.ResponseWriter, r *http.Request) {
	if h.hung.Load() {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))
}

func callWithin(p *Pool, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	_, err := p.Do(ctx, &Request{Method: http.MethodGet, Path: "/order?user_id=7"})
	return time.Since(start), err
}

// TestHungInstanceIsPassedOver: once an instance has let one call's
// deadline pass, later calls do not wait for it (UNAVAILABLE at once, even
// with no other instance: no panic-mode attempt), until a health probe gets
// an answer from it again.
func TestHungInstanceIsPassedOver(t *testing.T) {
	t.Parallel()
	h := &hangable{}
	u := startUpstream(t, h.serve)
	p := newTestPool(t, []string{u.URL}, Options{})
	if _, err := callWithin(p, time.Second); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	h.hung.Store(true)
	took, err := callWithin(p, 400*time.Millisecond)
	assertStatus(t, err, codes.DeadlineExceeded, "service_b did not answer in time")
	if took < 400*time.Millisecond {
		t.Fatalf("first call to the hung instance took %s, want the whole deadline", took)
	}
	hits := u.hits.Load()
	for range 5 {
		took, err = callWithin(p, 2*time.Second)
		assertStatus(t, err, codes.Unavailable, "service_b unavailable")
		if took > 300*time.Millisecond {
			t.Errorf("a call while the instance is passed over took %s, want it to fail at once", took)
		}
	}
	if got := u.hits.Load(); got != hits {
		t.Errorf("the passed-over instance got %d more calls", got-hits)
	}
	h.hung.Store(false)
	eventually(t, "the instance back once it answers a probe", func() bool { _, err := callWithin(p, time.Second); return err == nil })
}

// TestShortDeadlineDoesNotPassOver: a deadline shorter than MinHungBudget
// says more about the caller than about the instance: the next call still
// goes to it.
func TestShortDeadlineDoesNotPassOver(t *testing.T) {
	t.Parallel()
	h := &hangable{}
	h.hung.Store(true)
	u := startUpstream(t, h.serve)
	p := newTestPool(t, []string{u.URL}, Options{MinHungBudget: time.Second})
	for range 3 {
		_, err := callWithin(p, 100*time.Millisecond)
		assertStatus(t, err, codes.DeadlineExceeded, "service_b did not answer in time")
	}
	if got := u.hits.Load(); got != 3 {
		t.Errorf("the instance got %d calls, want 3: a short deadline passed it over", got)
	}
}
