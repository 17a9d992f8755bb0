package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
		if got := stock.header.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("stock stream Referrer-Policy %q, want no-referrer", got)
		}
		stock.cancel()
	}
	// No token is 401; a query token is its user, so the owner policy
	// still decides (another user's cart: 403); a bad one is 401.
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

// livePage is the browser page of TestLiveBrowser: it opens an
// EventSource on the gateway's order stream with the token as
// access_token (?token= in the page's URL replaces the one it was served
// with), lists each OrderPaid in the DOM, and reports what happens to the
// test's server (POST /report, same origin as the page).
var livePage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>orders</title></head>
<body><p id="state">connecting</p><ul id="events"></ul>
<script>
const report = (kind, detail) => fetch("/report", {method: "POST", body: JSON.stringify({kind, detail})});
const token = new URLSearchParams(location.search).get("token") || {{.Token}};
const es = new EventSource({{.Gateway}} + "/order/events?access_token=" + encodeURIComponent(token));
es.onopen = () => { document.getElementById("state").textContent = "open"; report("open", ""); };
es.onerror = () => { document.getElementById("state").textContent = "error " + es.readyState; report("error", String(es.readyState)); };
es.addEventListener("shop.events.v1.OrderPaid", (e) => {
  const order = JSON.parse(e.data).order;
  const li = document.createElement("li");
  li.textContent = order.order_id + " " + order.status;
  document.getElementById("events").append(li);
  report("event", li.textContent);
});
</script></body></html>`))

// pageReport is one report of the page.
type pageReport struct{ Kind, Detail string }

// servePage serves livePage for the gateway and token on a loopback port
// of its own (an origin other than the gateway's), and the page's reports
// on the returned channel.
func servePage(tb testing.TB, ln net.Listener, gateway, token string) <-chan pageReport {
	tb.Helper()
	reports := make(chan pageReport, 64)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = livePage.Execute(w, struct{ Gateway, Token string }{gateway, token})
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep pageReport
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&rep); err == nil {
			select {
			case reports <- rep:
			default:
			}
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return reports
}

// waitReport waits for the page's report of kind, failing on one of stop.
func waitReport(tb testing.TB, reports <-chan pageReport, kind string, timeout time.Duration, stop ...string) pageReport {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-reports:
			if r.Kind == kind {
				return r
			}
			for _, k := range stop {
				if r.Kind == k {
					tb.Fatalf("the page reported %s (%s) while waiting for %s", r.Kind, r.Detail, kind)
				}
			}
		case <-deadline:
			tb.Fatalf("the page did not report %s within %v", kind, timeout)
		}
	}
}

func listen(tb testing.TB) (net.Listener, string) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

// TestLiveBrowser: a page of another origin (allowed by -cors-origins)
// opens an EventSource on GET /order/events with the token as
// access_token; the user's order is created and paid over REST, and the
// page shows it turning paid. The same page from an origin that is not
// allowed, or with a token that is not valid, never opens.
func TestLiveBrowser(t *testing.T) {
	t.Parallel()
	pageLn, pageOrigin := listen(t)
	otherLn, otherOrigin := listen(t)
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-cors-origins", pageOrigin}})
	user := newID()
	token := s.Token(t, user, "")
	product := createProduct(t, s, "browser", 100, 250)
	reports := servePage(t, pageLn, s.RESTURL(), token)
	otherReports := servePage(t, otherLn, s.RESTURL(), token)

	ctx := newChromium(t, "127.0.0.1")
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageOrigin+"/")); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	waitReport(t, reports, "open", 30*time.Second, "error")

	addItem(t, s, user, product)
	waitCart(t, s, user, 1)
	_, order := do(t, s, http.StatusOK, "POST", "/order/pay", "{}", "Authorization", harness.Bearer(token))
	want := fmt.Sprint(order["order_id"]) + " ORDER_STATUS_PAID"
	if got := waitReport(t, reports, "event", 30*time.Second, "error"); got.Detail != want {
		t.Errorf("the page reported %q, want %q", got.Detail, want)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#events")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(shown) != want {
		t.Errorf("the page shows %q, want %q", shown, want)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		keepArtifact(t, "live-orders.png", shot)
	}

	// An origin the gateway does not allow: the browser refuses the
	// stream (CORS), although the token is good.
	if err := chromedp.Do(ctx, chromedp.Navigate(otherOrigin+"/")); err != nil {
		t.Fatalf("opening the page of another origin: %v", err)
	}
	waitReport(t, otherReports, "error", 30*time.Second, "open")

	// The allowed origin with a token that is not valid: 401, and the
	// EventSource gives up (CLOSED).
	if err := chromedp.Do(ctx, chromedp.Navigate(pageOrigin+"/?token=not-a-token")); err != nil {
		t.Fatalf("opening the page with a bad token: %v", err)
	}
	if got := waitReport(t, reports, "error", 30*time.Second, "open"); got.Detail != "2" {
		t.Errorf("EventSource with a bad token: readyState %s, want 2 (CLOSED)", got.Detail)
	}
}
