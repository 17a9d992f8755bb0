package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestDoReusesOnlyLiveConnections: a server closes idle keep-alive
// connections; a POST (which the pool never repeats on its own) sent after
// that must go out on a new connection, not fail on the closed one.
func TestDoReusesOnlyLiveConnections(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(answer(http.StatusOK, `{}`))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := newTestPool(t, []string{srv.URL}, Options{})

	tests := []struct {
		name      string
		idle      time.Duration
		wantConns int64
	}{
		{"first call dials", 0, 1},
		{"a call right after reuses the connection", 0, 1},
		{"after the server closed it idle, a new connection", staleAfter + 200*time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			time.Sleep(tt.idle)
			if _, err := p.Do(t.Context(), &Request{Method: http.MethodPost, Path: "/cart/add", Body: []byte(`{}`)}); err != nil {
				t.Fatalf("POST: %v", err)
			}
			if got, want := conns.Load(), tt.wantConns; got != want {
				t.Errorf("connections opened: got %d, want %d", got, want)
			}
		})
	}
}

// TestHookWrapsEveryAttempt: the hook sees each attempt before and after,
// and a header it adds reaches the instance.
func TestHookWrapsEveryAttempt(t *testing.T) {
	t.Parallel()
	var seen sync.Map
	var hits atomic.Int64
	// The first attempt, wherever it lands, gets 503; the retry 200.
	h := func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Traceparent"), true)
		if hits.Add(1) == 1 {
			answer(http.StatusServiceUnavailable, `{}`)(w, r)
			return
		}
		answer(http.StatusOK, `{}`)(w, r)
	}
	up, up2 := startUpstream(t, h), startUpstream(t, h)
	type key struct{}
	var mu sync.Mutex
	var after []Attempt
	hook := func(ctx context.Context, a *Attempt) (context.Context, func(*Attempt)) {
		a.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		ctx = context.WithValue(ctx, key{}, a.Instance)
		return ctx, func(a *Attempt) {
			if got := ctx.Value(key{}); got != a.Instance {
				t.Errorf("the attempt's context: got %v, want the hook's", got)
			}
			mu.Lock()
			after = append(after, *a)
			mu.Unlock()
		}
	}
	p := newTestPool(t, []string{up.URL, up2.URL}, Options{Hook: hook})
	if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/stock/1"}); err != nil {
		t.Fatalf("GET: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(after), 2; got != want {
		t.Fatalf("attempts seen after: got %d, want %d (%+v)", got, want, after)
	}
	if after[0].Status != http.StatusServiceUnavailable || after[1].Status != http.StatusOK {
		t.Errorf("attempt statuses: got %d and %d, want 503 and 200", after[0].Status, after[1].Status)
	}
	for _, a := range after {
		if a.Method != http.MethodGet || a.Path != "/stock/1" || a.Err != nil {
			t.Errorf("attempt: got %+v", a)
		}
	}
	if _, ok := seen.Load("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); !ok {
		t.Error("the hook's traceparent did not reach the instance")
	}
}

// TestDoCancelEndsTheAttempt: the caller's cancellation ends an attempt in
// flight at once (the connection is cut, the instance sees its request
// end), not when the pool's own timeout fires.
func TestDoCancelEndsTheAttempt(t *testing.T) {
	t.Parallel()
	started, ended := make(chan struct{}), make(chan struct{})
	u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(ended)
	})
	p := newTestPool(t, []string{u.URL}, Options{Timeout: 90 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := p.Do(ctx, &Request{Method: http.MethodGet, Path: "/x"})
		errc <- err
	}()
	<-started
	cancel()
	select {
	case err := <-errc:
		assertStatus(t, err, codes.Canceled, "request canceled")
	case <-time.After(45 * time.Second):
		t.Fatal("Do still waiting 45 s after its context was canceled")
	}
	select {
	case <-ended:
	case <-time.After(45 * time.Second):
		t.Fatal("the instance did not see its request end")
	}
}
