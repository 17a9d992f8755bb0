package e2e

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// TestLiveQueryToken: a browser's EventSource, which cannot send
// Authorization, subscribes with the token as the access_token query
// parameter; the parameter is refused anywhere else, and the token is
// found neither in the gateway's log (access lines included) nor in any
// span it exports.
func TestLiveQueryToken(t *testing.T) {
	t.Parallel()
	rcv := newOTLPReceiver(t)
	s := harness.Start(t, harness.Options{
		GatewayEnv: []string{
			"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.url,
			"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_BSP_SCHEDULE_DELAY=200",
			"OTEL_TRACES_SAMPLER=parentbased_always_on",
			"OTEL_SERVICE_NAME=gateway-under-test",
		},
		GatewayArgs: []string{"-log-format", "json", "-log-level", "debug"},
	})
	user := newID()
	tok := s.Token(t, user, "")

	// Subscribed with the query token alone.
	st, code, body := openSSE(t, s.RESTURL(), "/order/events?access_token="+tok, "", "")
	if st == nil {
		t.Fatalf("GET /order/events?access_token=…: %d %s", code, body)
	}
	if got := st.header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer", got)
	}
	if got := st.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	st.cancel()
	// The public stock stream is never stored either.
	if stock, code, body := openSSE(t, s.RESTURL(), "/stock/events", "", ""); stock == nil {
		t.Errorf("GET /stock/events: %d %s", code, body)
	} else {
		if got := stock.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("stock stream Cache-Control %q, want no-store", got)
		}
		stock.cancel()
	}
	// Another user's token in the query is that user: the owner policy
	// still decides.
	if _, code, body := openSSE(t, s.RESTURL(), "/order/events?user_id="+str(user), "", ""); code != http.StatusUnauthorized {
		t.Errorf("no token at all: %d %s, want 401", code, body)
	}
	if _, code, body := openSSE(t, s.RESTURL(), "/order/events?user_id="+str(user)+"&access_token="+s.Token(t, newID(), ""), "", ""); code != http.StatusForbidden {
		t.Errorf("another user's query token: %d %s, want 403", code, body)
	}
	if _, code, body := openSSE(t, s.RESTURL(), "/order/events?access_token=not-a-jwt", "", ""); code != http.StatusUnauthorized {
		t.Errorf("a bad query token: %d %s, want 401", code, body)
	}

	// Refused: both header and query, twice, without Accept:
	// text/event-stream, and on any other route.
	refused := []struct {
		name, method, path, accept string
		headers                    []string
	}{
		{"header and query", "GET", "/order/events?access_token=" + tok, "text/event-stream", []string{"Authorization", harness.Bearer(tok)}},
		{"twice", "GET", "/order/events?access_token=" + tok + "&access_token=" + tok, "text/event-stream", nil},
		{"NDJSON", "GET", "/order/events?access_token=" + tok, "application/json", nil},
		{"unary read", "GET", "/cart?access_token=" + tok, "", nil},
		{"unary write", "POST", "/cart/add?access_token=" + tok, "", nil},
	}
	for _, tc := range refused {
		hs := append([]string{}, tc.headers...)
		if tc.accept != "" {
			hs = append(hs, "Accept", tc.accept)
		}
		body := `{"product_id":1,"quantity":1}`
		if tc.method == "GET" {
			body = ""
		}
		code, _, raw := s.DoRaw(t, tc.method, tc.path, body, hs...)
		if code != http.StatusBadRequest || !strings.Contains(string(raw), `"field":"access_token"`) {
			t.Errorf("%s: %d %s, want 400 naming access_token", tc.name, code, raw)
		}
		if strings.Contains(string(raw), tok) {
			t.Errorf("%s: the answer echoes the token: %s", tc.name, raw)
		}
	}

	// Nothing recorded the token: spans (flushed every 200 ms) and the log.
	time.Sleep(time.Second)
	s.StopGateway()
	rcv.mu.Lock()
	spans := append([]span(nil), rcv.spans...)
	rcv.mu.Unlock()
	sawStream := false
	for _, sp := range spans {
		for k, v := range sp.attributes {
			if strings.Contains(v, tok) {
				t.Errorf("span %s: attribute %s carries the token", sp, k)
			}
			if strings.Contains(v, "/order/events") {
				sawStream = true
			}
		}
	}
	if !sawStream {
		t.Errorf("no span of /order/events among %d: the check above saw nothing", len(spans))
	}
	logged, err := os.ReadFile(s.GatewayLog())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logged), tok) {
		t.Error("the gateway's log carries the token")
	}
	var ok200, bad400 int
	for _, l := range accessLines(t, s.GatewayLog()) {
		if l["path"] == "/order/events" {
			switch l["status"] {
			case float64(200):
				ok200++
			case float64(400):
				bad400++
			}
		}
	}
	if ok200 == 0 || bad400 < 3 {
		t.Errorf("access lines of /order/events: %d with 200, %d with 400; want the requests above logged", ok200, bad400)
	}
}
