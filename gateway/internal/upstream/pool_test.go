package upstream

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// upstream is a test instance that counts the requests it serves
// (health probes excluded).
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

// startUpstream serves h on a fresh port until the test ends.
func startUpstream(tb testing.TB, h http.HandlerFunc) *upstream {
	tb.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(u.count(h))
	tb.Cleanup(u.Close)
	return u
}

// startUpstreamAt serves h on addr, the address of an instance that was
// dead, until the test ends.
func startUpstreamAt(tb testing.TB, addr string, h http.HandlerFunc) *upstream {
	tb.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("listen on %s again: %v", addr, err)
	}
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(u.count(h))
	_ = u.Listener.Close()
	u.Listener = l
	u.Start()
	tb.Cleanup(u.Close)
	return u
}

func (u *upstream) count(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != healthPath {
			u.hits.Add(1)
		}
		h(w, r)
	}
}

// deadURL is the URL of a port that nothing listens on: connections to
// it are refused.
func deadURL(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr
}

// answer replies with status and a JSON body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// newTestPool makes a pool called "service_b" with the prober off unless opts
// says otherwise, closed when the test ends.
func newTestPool(tb testing.TB, urls []string, opts Options) *Pool {
	tb.Helper()
	if opts.HealthInterval == 0 {
		opts.HealthInterval = -1
	}
	p, err := NewPool("service_b", urls, opts)
	if err != nil {
		tb.Fatalf("NewPool: %v", err)
	}
	tb.Cleanup(p.Close)
	return p
}

// eventually fails the test unless cond becomes true within 5 s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDoPassesRequestAndAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		method, path    string
		body            string
		wantContentType string
	}{
		{"GET with query", http.MethodGet, "/stock?page_size=10&page_token=a%2Fb", "", ""},
		{"POST with body", http.MethodPost, "/cart/add", `{"user_id":"1","product_id":"7","quantity":2}`, "application/json"},
		{"PUT with body", http.MethodPut, "/stock/7", `{"quantity":3}`, "application/json"},
		{"DELETE escaped path", http.MethodDelete, "/cart/a%2Fb", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type seen struct {
				method, uri, body, accept, contentType, requestID, traceparent string
			}
			got := make(chan seen, 1)
			u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- seen{r.Method, r.RequestURI, string(b), r.Header.Get("Accept"), r.Header.Get("Content-Type"),
					r.Header.Get("X-Request-Id"), r.Header.Get("Traceparent")}
				w.Header().Set("X-Answer", "yes")
				answer(http.StatusCreated, `{"ok":true}`)(w, r)
			})
			p := newTestPool(t, []string{u.URL}, Options{})
			req := &Request{Method: tt.method, Path: tt.path, Header: http.Header{
				"X-Request-Id": {"req-1"},
				"Traceparent":  {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			}}
			if tt.body != "" {
				req.Body = []byte(tt.body)
			}
			resp, err := p.Do(t.Context(), req)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			want := seen{tt.method, tt.path, tt.body, "application/json", tt.wantContentType,
				"req-1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
			if s := <-got; s != want {
				t.Errorf("upstream saw %+v, want %+v", s, want)
			}
			if got, want := resp.Status, http.StatusCreated; got != want {
				t.Errorf("got status %d, want %d", got, want)
			}
			if got, want := string(resp.Body), `{"ok":true}`; got != want {
				t.Errorf("got body %q, want %q", got, want)
			}
			if got, want := resp.Header.Get("X-Answer"), "yes"; got != want {
				t.Errorf("got header X-Answer %q, want %q", got, want)
			}
			if got, want := resp.Instance, u.URL; got != want {
				t.Errorf("got instance %q, want %q", got, want)
			}
			if got, want := resp.Attempts, 1; got != want {
				t.Errorf("got %d attempts, want %d", got, want)
			}
		})
	}
}

func TestDoPathPrefix(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.RequestURI
		answer(http.StatusOK, `{}`)(w, r)
	})
	p := newTestPool(t, []string{u.URL + "/api/"}, Options{})
	if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/stock/7?x=1"}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	if got, want := <-got, "/api/stock/7?x=1"; got != want {
		t.Errorf("upstream saw %q, want %q", got, want)
	}
}

func TestDoRejectsBadPath(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, answer(http.StatusOK, `{}`))
	p := newTestPool(t, []string{u.URL}, Options{})
	for _, path := range []string{"", "stock", "//evil.example/x"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			resp, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: path})
			assertStatus(t, err, codes.Internal, "invalid request to service_b")
			if got, want := resp.Attempts, 0; got != want {
				t.Errorf("got %d attempts, want %d", got, want)
			}
		})
	}
	if got := u.hits.Load(); got != 0 {
		t.Errorf("upstream got %d requests, want none", got)
	}
}

func TestDoMapsUpstreamErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range httpStatusCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startUpstream(t, answer(tt.status, tt.body))
			p := newTestPool(t, []string{u.URL}, Options{})
			resp, err := p.Do(t.Context(), &Request{Method: http.MethodPost, Path: "/x", Body: []byte(`{}`)})
			assertStatus(t, err, tt.wantCode, tt.wantMsg)
			if got, want := resp.Status, tt.status; got != want {
				t.Errorf("got status %d, want %d", got, want)
			}
			if got, want := string(resp.Body), tt.body; got != want {
				t.Errorf("got body %q, want %q", got, want)
			}
		})
	}
}

func TestDoDeadline(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	tests := []struct {
		name        string
		ctxTimeout  time.Duration // 0: no deadline on the context.
		poolTimeout time.Duration
		handler     http.HandlerFunc
		wantCode    codes.Code
		wantMsg     string
	}{
		{"context deadline bounds a slow call", 100 * time.Millisecond, time.Hour, slow, codes.DeadlineExceeded, "service_b did not answer in time"},
		{"context deadline wins over a shorter Timeout", 100 * time.Millisecond, time.Millisecond, answer(http.StatusOK, `{}`), codes.OK, ""},
		{"Timeout applies without a context deadline", 0, 100 * time.Millisecond, slow, codes.DeadlineExceeded, "service_b did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startUpstream(t, tt.handler)
			p := newTestPool(t, []string{u.URL}, Options{Timeout: tt.poolTimeout})
			ctx := context.Background()
			if tt.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxTimeout)
				defer cancel()
			}
			start := time.Now()
			_, err := p.Do(ctx, &Request{Method: http.MethodGet, Path: "/slow"})
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("call took %s, want it cut at the deadline", elapsed)
			}
			if tt.wantCode == codes.OK {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				return
			}
			assertStatus(t, err, tt.wantCode, tt.wantMsg)
		})
	}
}

func TestDoDeadlineBoundsAllAttempts(t *testing.T) {
	t.Parallel()
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(80 * time.Millisecond):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	a, b, c := startUpstream(t, slow), startUpstream(t, slow), startUpstream(t, slow)
	p := newTestPool(t, []string{a.URL, b.URL, c.URL}, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := p.Do(ctx, &Request{Method: http.MethodGet, Path: "/x"})
	assertStatus(t, err, codes.DeadlineExceeded, "service_b did not answer in time")
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("call took %s, want about 120ms", elapsed)
	}
	if got, want := resp.Attempts, 2; got != want {
		t.Errorf("got %d attempts, want %d (the second one cut by the deadline)", got, want)
	}
}

func TestDoCanceled(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	p := newTestPool(t, []string{u.URL}, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	_, err := p.Do(ctx, &Request{Method: http.MethodGet, Path: "/x"})
	assertStatus(t, err, codes.Canceled, "request canceled")
}

func TestDoRoundRobin(t *testing.T) {
	t.Parallel()
	var us []*upstream
	var urls []string
	for range 3 {
		u := startUpstream(t, answer(http.StatusOK, `{}`))
		us = append(us, u)
		urls = append(urls, u.URL)
	}
	p := newTestPool(t, urls, Options{})
	for range 30 {
		if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"}); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	for i, u := range us {
		if got, want := u.hits.Load(), int64(10); got != want {
			t.Errorf("instance %d got %d requests, want %d", i, got, want)
		}
	}
}

func TestDoRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		failing http.HandlerFunc // nil: the instance is dead.
		// After two calls, each starting once on each instance:
		wantFailingHits, wantLiveHits int64
		wantAttempts                  int // Summed over both calls.
		wantCode                      codes.Code
	}{
		{"GET after 503", http.MethodGet, answer(503, `{"code":"UNAVAILABLE","message":"busy"}`), 1, 2, 3, codes.OK},
		{"PUT after 502", http.MethodPut, answer(502, ``), 1, 2, 3, codes.OK},
		{"DELETE after 504", http.MethodDelete, answer(504, ``), 1, 2, 3, codes.OK},
		{"GET after hang-up", http.MethodGet, hangUp, 1, 2, 3, codes.OK},
		{"GET after refused", http.MethodGet, nil, 0, 2, 3, codes.OK},
		{"DELETE after refused", http.MethodDelete, nil, 0, 2, 3, codes.OK},
		{"GET not after 500", http.MethodGet, answer(500, ``), 1, 1, 2, codes.Internal},
		{"GET not after 404", http.MethodGet, answer(404, ``), 1, 1, 2, codes.NotFound},
		{"POST not after 503", http.MethodPost, answer(503, ``), 1, 1, 2, codes.Unavailable},
		{"POST not after hang-up", http.MethodPost, hangUp, 1, 1, 2, codes.Unavailable},
		// The request never left: safe for any method.
		{"POST after refused", http.MethodPost, nil, 0, 2, 3, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			live := startUpstream(t, answer(http.StatusOK, `{"ok":true}`))
			failingURL := deadURL(t)
			var failing *upstream
			if tt.failing != nil {
				failing = startUpstream(t, tt.failing)
				failingURL = failing.URL
			}
			p := newTestPool(t, []string{failingURL, live.URL}, Options{})
			attempts := 0
			var lastErr error
			for range 2 {
				resp, err := p.Do(t.Context(), &Request{Method: tt.method, Path: "/x", Body: []byte(`{}`)})
				attempts += resp.Attempts
				if err != nil {
					lastErr = err
				}
			}
			if tt.wantCode == codes.OK {
				if lastErr != nil {
					t.Errorf("Do: %v", lastErr)
				}
			} else {
				if lastErr == nil {
					t.Fatalf("got no error, want %v", tt.wantCode)
				}
				assertCode(t, lastErr, tt.wantCode)
			}
			if failing != nil {
				if got, want := failing.hits.Load(), tt.wantFailingHits; got != want {
					t.Errorf("failing instance got %d requests, want %d", got, want)
				}
			}
			if got, want := live.hits.Load(), tt.wantLiveHits; got != want {
				t.Errorf("live instance got %d requests, want %d", got, want)
			}
			if got, want := attempts, tt.wantAttempts; got != want {
				t.Errorf("got %d attempts, want %d", got, want)
			}
		})
	}
}

func TestDoMaxAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		instances   int
		maxAttempts int
		wantHits    int64
	}{
		{"bounded by MaxAttempts", 3, 2, 2},
		{"bounded by instances", 3, 5, 3},
		{"one instance, no retry", 1, 3, 1},
		{"default", 4, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int64
			var urls []string
			for range tt.instances {
				u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					w.WriteHeader(http.StatusServiceUnavailable)
				})
				urls = append(urls, u.URL)
			}
			p := newTestPool(t, urls, Options{MaxAttempts: tt.maxAttempts})
			resp, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"})
			assertStatus(t, err, codes.Unavailable, "service_b answered HTTP 503")
			if got, want := hits.Load(), tt.wantHits; got != want {
				t.Errorf("got %d requests, want %d", got, want)
			}
			if got, want := int64(resp.Attempts), tt.wantHits; got != want {
				t.Errorf("got %d attempts, want %d", got, want)
			}
		})
	}
}

func TestDoEjectsAndReadmits(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	dead := deadURL(t)
	live := startUpstream(t, answer(http.StatusOK, `{}`))
	const ejectFor = 300 * time.Millisecond
	p := newTestPool(t, []string{dead, live.URL}, Options{
		EjectAfter: 3,
		EjectFor:   ejectFor,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	get := func() *Response {
		t.Helper()
		resp, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"})
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		return resp
	}
	// Every other call starts on the dead instance and is retried: three
	// refusals eject it.
	for range 6 {
		get()
	}
	ejectedAt := time.Now()
	for i := range 10 {
		if got, want := get().Attempts, 1; got != want {
			t.Fatalf("call %d after ejection: got %d attempts, want %d", i, got, want)
		}
	}
	if got, want := strings.Count(logs.String(), "upstream instance ejected"), 1; got != want {
		t.Errorf("got %d ejection log lines, want %d:\n%s", got, want, logs)
	}
	revived := startUpstreamAt(t, strings.TrimPrefix(dead, "http://"), answer(http.StatusOK, `{}`))
	time.Sleep(time.Until(ejectedAt.Add(ejectFor + 50*time.Millisecond)))
	for range 10 {
		get()
	}
	if got, want := revived.hits.Load(), int64(5); got != want {
		t.Errorf("revived instance got %d of 10 requests, want %d", got, want)
	}
	if !strings.Contains(logs.String(), "upstream instance re-admitted") {
		t.Errorf("no re-admission in the log:\n%s", logs)
	}
	if strings.Count(logs.String(), "\n") > 4 {
		t.Errorf("want state changes only in the log, got:\n%s", logs)
	}
}

func TestDoPanicMode(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	handler := func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			answer(http.StatusOK, `{}`)(w, r)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}
	a, b := startUpstream(t, handler), startUpstream(t, handler)
	p := newTestPool(t, []string{a.URL, b.URL}, Options{EjectAfter: 1, EjectFor: time.Hour})
	for range 2 {
		_, _ = p.Do(t.Context(), &Request{Method: http.MethodPost, Path: "/x"})
	}
	if got, want := a.hits.Load()+b.hits.Load(), int64(2); got != want {
		t.Fatalf("got %d requests, want %d", got, want)
	}
	// Both are ejected for an hour, yet calls still reach one of them.
	_, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"})
	assertStatus(t, err, codes.Internal, "service_b answered HTTP 500")
	healthy.Store(true)
	resp, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"})
	if err != nil {
		t.Fatalf("Do in panic mode: %v", err)
	}
	if got, want := resp.Attempts, 1; got != want {
		t.Errorf("got %d attempts, want %d", got, want)
	}
	if got, want := a.hits.Load()+b.hits.Load(), int64(4); got != want {
		t.Errorf("got %d requests, want %d", got, want)
	}
}

func TestDoAllDead(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, []string{deadURL(t), deadURL(t)}, Options{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		resp, err := p.Do(t.Context(), &Request{Method: method, Path: "/x"})
		assertStatus(t, err, codes.Unavailable, "service_b unavailable")
		if got, want := resp.Status, 0; got != want {
			t.Errorf("%s: got status %d, want %d", method, got, want)
		}
		if got, want := resp.Attempts, 2; got != want {
			t.Errorf("%s: got %d attempts, want %d", method, got, want)
		}
	}
}

func TestDoHealthProber(t *testing.T) {
	t.Parallel()
	var sick atomic.Bool
	sick.Store(true)
	a := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		answer(http.StatusOK, `{}`)(w, r)
	})
	b := startUpstream(t, answer(http.StatusOK, `{}`))
	// A probe's timeout is the interval (at most 1 s): 100 ms, not 10, so
	// that a loaded machine does not time out the healthy instance's probe
	// and send the test's calls to the sick one in panic mode.
	p := newTestPool(t, []string{a.URL, b.URL}, Options{HealthInterval: 100 * time.Millisecond})
	eventually(t, "the prober marks the sick instance down", func() bool {
		return p.instances[0].health.Load() == healthDown && p.instances[1].health.Load() == healthUp
	})
	for range 10 {
		if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"}); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	if got, want := a.hits.Load(), int64(0); got != want {
		t.Errorf("sick instance got %d requests, want %d", got, want)
	}
	sick.Store(false)
	eventually(t, "the prober marks the instance up again", func() bool {
		return p.instances[0].health.Load() == healthUp
	})
	for range 10 {
		if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"}); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	if got, want := a.hits.Load(), int64(5); got != want {
		t.Errorf("recovered instance got %d requests, want %d", got, want)
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		healthStatuses []int // One instance per entry; 0: dead.
		prober         bool
		wantReady      bool
	}{
		{"one live", []int{200}, false, true},
		{"one dead, one live", []int{0, 200}, false, true},
		{"all dead", []int{0, 0}, false, false},
		{"healthz fails", []int{500}, false, false},
		{"prober: one live", []int{0, 200}, true, true},
		{"prober: all dead", []int{0, 503}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var urls []string
			for _, st := range tt.healthStatuses {
				if st == 0 {
					urls = append(urls, deadURL(t))
					continue
				}
				urls = append(urls, startUpstream(t, answer(st, `{"status":"ok"}`)).URL)
			}
			opts := Options{}
			if tt.prober {
				opts.HealthInterval = 10 * time.Millisecond
			}
			p := newTestPool(t, urls, opts)
			if tt.prober {
				// Each instance probed to its true state: a probe of a live
				// instance may time out once (10 ms) on a loaded machine.
				eventually(t, "every instance is probed", func() bool {
					for i, inst := range p.instances {
						want := healthUp
						if st := tt.healthStatuses[i]; st == 0 || st >= 300 {
							want = healthDown
						}
						if inst.health.Load() != want {
							return false
						}
					}
					return true
				})
			}
			err := p.Ready(t.Context())
			if got, want := err == nil, tt.wantReady; got != want {
				t.Fatalf("got ready %v (%v), want %v", got, err, want)
			}
			if err != nil && strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error %q shows an address", err)
			}
		})
	}
}

func TestDoResponseTooLarge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		chunked bool
		wantErr bool
	}{
		{"at the limit", 16, false, false},
		{"over the limit", 17, false, true},
		{"chunked at the limit", 16, true, false},
		{"chunked over the limit", 17, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				body := strings.Repeat("x", tt.size)
				if tt.chunked {
					_, _ = io.WriteString(w, body[:1])
					http.NewResponseController(w).Flush()
					_, _ = io.WriteString(w, body[1:])
					return
				}
				_, _ = io.WriteString(w, body)
			})
			p := newTestPool(t, []string{u.URL}, Options{MaxResponseBytes: 16})
			resp, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"})
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				if got, want := len(resp.Body), tt.size; got != want {
					t.Errorf("got %d bytes, want %d", got, want)
				}
				return
			}
			assertStatus(t, err, codes.Internal, "service_b response too large")
			if got, want := resp.Attempts, 1; got != want {
				t.Errorf("got %d attempts, want %d", got, want)
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, answer(http.StatusOK, `{}`))
	p, err := NewPool("svc", []string{u.URL}, Options{HealthInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close()
	if _, err := p.Do(t.Context(), &Request{Method: http.MethodGet, Path: "/x"}); err != nil {
		t.Errorf("Do after Close: %v", err)
	}
}

// assertCode checks only the code of a status error.
func assertCode(tb testing.TB, err error, want codes.Code) {
	tb.Helper()
	if got := status.Code(err); got != want {
		tb.Errorf("got code %v (%v), want %v", got, err, want)
	}
}
