package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/relay"
)

func TestParseTopicMap(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "", want: map[string]string{}},
		{in: "shop.cart.v1=prod.cart", want: map[string]string{"shop.cart.v1": "prod.cart"}},
		{in: " a=b , c=d ,", want: map[string]string{"a": "b", "c": "d"}},
		{in: "a", wantErr: `"a": want logical=actual`},
		{in: "a=", wantErr: `"a=": want logical=actual`},
		{in: "a=b,a=c", wantErr: "mapped twice"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTopicMap(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// eventsGateway wires a gateway with events on, Kafka unreachable (a closed
// port), a fake service answering every call with a stock item, and an
// outbox of maxBytes in a temp dir. It returns the REST handler and the
// count of upstream mutation calls.
func eventsGateway(tb testing.TB, maxBytes int64) (api, admin http.Handler, calls *atomic.Int64) {
	tb.Helper()
	calls = &atomic.Int64{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			calls.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"product_id":7,"product_name":"green tea","quantity":5,"price_cents":350}`)
	}))
	tb.Cleanup(up.Close)
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	g, err := New(ctx, Config{
		ServiceA: []string{up.URL},
		ServiceB: []string{up.URL},
		// These tests are about events; the edge checks have their own.
		Auth:              AuthConfig{Disabled: true},
		ServiceSigningKey: serviceKey(tb),
		Events: EventsConfig{
			Brokers:        []string{"127.0.0.1:1"},
			OutboxDir:      tb.TempDir(),
			OutboxMaxBytes: maxBytes,
			NoSync:         true,
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(g.Close)
	return g.Server.HTTPHandler(), g.Server.AdminHandler(), calls
}

func do(tb testing.TB, h http.Handler, method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestEventsREST runs REST mutations through the whole in-process chain with
// Kafka down: they succeed into the outbox; a repeated Idempotency-Key is
// replayed with the same body and the Idempotency-Replayed header and no
// upstream call; /readyz stays ready while Kafka is down.
func TestEventsREST(t *testing.T) {
	t.Parallel()
	h, admin, calls := eventsGateway(t, 0)
	const body = `{"product_id":7,"quantity":5}`
	steps := []struct {
		name         string
		key          string
		body         string
		wantStatus   int
		wantReplayed string
		wantCalls    int64
	}{
		{"first", "key-1", body, http.StatusOK, "", 1},
		{"repeat", "key-1", body, http.StatusOK, "true", 1},
		{"different body", "key-1", `{"product_id":7,"quantity":6}`, http.StatusBadRequest, "", 1},
		{"no key", "", body, http.StatusOK, "", 2},
	}
	var firstBody string
	for _, st := range steps {
		var hdr []string
		if st.key != "" {
			hdr = []string{"Idempotency-Key", st.key}
		}
		rec := do(t, h, http.MethodPost, "/stock/update", st.body, hdr...)
		if got, want := rec.Code, st.wantStatus; got != want {
			t.Fatalf("%s: status %d, want %d: %s", st.name, got, want, rec.Body)
		}
		if got, want := rec.Header().Get("Idempotency-Replayed"), st.wantReplayed; got != want {
			t.Errorf("%s: Idempotency-Replayed %q, want %q", st.name, got, want)
		}
		if got, want := calls.Load(), st.wantCalls; got != want {
			t.Errorf("%s: upstream calls %d, want %d", st.name, got, want)
		}
		if st.name == "first" {
			firstBody = rec.Body.String()
		}
		if st.wantReplayed == "true" && rec.Body.String() != firstBody {
			t.Errorf("%s: replayed body %s, want %s", st.name, rec.Body, firstBody)
		}
	}
	rec := do(t, admin, http.MethodGet, "/readyz", "")
	if got, want := rec.Code, http.StatusOK; got != want {
		t.Errorf("/readyz with Kafka down: %d, want %d: %s", got, want, rec.Body)
	}
	var ready map[string]map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &ready)
	if got, want := ready["outbox"]["detail"].(map[string]any)["depth"], float64(2); got != want {
		t.Errorf("outbox depth %v, want %v: %s", got, want, rec.Body)
	}
	if got, want := ready["kafka"]["detail"].(map[string]any)["connected"], false; got != want {
		t.Errorf("kafka connected %v, want %v: %s", got, want, rec.Body)
	}
}

// TestEventsOutboxFull: at the outbox cap a mutation is refused with 503
// before it reaches the service, reads still work, and /readyz says not
// ready.
func TestEventsOutboxFull(t *testing.T) {
	t.Parallel()
	// The cap's headroom (1/16, 1 KiB) must exceed one event (about 590
	// bytes with its ce_dataschema), so that the refusal comes from
	// admission, not from an append that no longer fits.
	h, admin, calls := eventsGateway(t, 16384)
	var refused bool
	for i := 0; i < 100 && !refused; i++ {
		rec := do(t, h, http.MethodPost, "/stock/update", `{"product_id":7,"quantity":5}`)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			refused = true
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if !refused {
		t.Fatal("100 mutations into a 16 KiB outbox, none refused")
	}
	before := calls.Load()
	if got, want := do(t, h, http.MethodPost, "/stock/update", `{"product_id":7,"quantity":5}`).Code, http.StatusServiceUnavailable; got != want {
		t.Errorf("mutation at the cap: %d, want %d", got, want)
	}
	if got, want := calls.Load(), before; got != want {
		t.Errorf("upstream calls %d after a refused mutation, want %d", got, want)
	}
	if got, want := do(t, h, http.MethodGet, "/stock/7", "").Code, http.StatusOK; got != want {
		t.Errorf("read at the cap: %d, want %d", got, want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := do(t, admin, http.MethodGet, "/readyz", "")
		if rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), "outbox: full") {
			// The public port says not ready, and nothing more.
			pub := do(t, h, http.MethodGet, "/readyz", "")
			if got, want := strings.TrimSpace(pub.Body.String()), `{"status":"not ready"}`; pub.Code != http.StatusServiceUnavailable || got != want {
				t.Errorf("public /readyz with a full outbox: %d %s, want 503 %s", pub.Code, got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz with a full outbox: %d %s, want 503 naming the outbox", rec.Code, rec.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The relay continues the trace of the header the events package writes.
func TestRelayReadsTheEventsTraceHeader(t *testing.T) {
	t.Parallel()
	if got, want := relay.TraceparentHeader, events.HeaderTraceparent; got != want {
		t.Fatalf("relay.TraceparentHeader = %q, events.HeaderTraceparent = %q; want equal", got, want)
	}
}
