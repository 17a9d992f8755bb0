package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/tests/harness"
)

// span is one span received over OTLP, with the ids in hex.
type span struct {
	service, name     string
	kind              tracepb.Span_SpanKind
	trace, id, parent string
	attributes        map[string]string
}

func (s span) String() string {
	return fmt.Sprintf("%s %q %v id=%s parent=%s", s.service, s.name, s.kind, s.id, s.parent)
}

// otlpReceiver is an OTLP/HTTP trace receiver (POST /v1/traces, protobuf)
// on a loopback port that keeps every span it gets.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []span
}

func newOTLPReceiver(tb testing.TB) *otlpReceiver {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &otlpReceiver{url: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	var msg collectortrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range sp.GetAttributes() {
					attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
				}
				r.spans = append(r.spans, span{
					service: service, name: sp.GetName(), kind: sp.GetKind(),
					trace: hex.EncodeToString(sp.GetTraceId()), id: hex.EncodeToString(sp.GetSpanId()),
					parent: hex.EncodeToString(sp.GetParentSpanId()), attributes: attrs,
				})
			}
		}
	}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

// trace returns the spans of one trace received so far.
func (r *otlpReceiver) trace(traceID string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.trace == traceID {
			out = append(out, s)
		}
	}
	return out
}

// TestTracing runs the gateway and both services exporting to an OTLP
// receiver, pays a cart with the caller's traceparent, and checks that one
// trace covers the whole payment with the right parent links: the caller's
// span → the gateway's server span → its upstream call → service B's
// server span → B's call to A → A's process_stock; B's OrderPaid event
// published in a span under B's request and applied by A's consumer (which
// clears the master cart) in a span under that; the gateway's own event
// published by the relay under the gateway's request. The access log line
// of the payment carries the trace id.
func TestTracing(t *testing.T) {
	t.Parallel()
	rcv := newOTLPReceiver(t)
	otel := []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.url,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_BSP_SCHEDULE_DELAY=200",
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
	}
	s := harness.Start(t, harness.Options{
		GatewayEnv:  append(otel, "OTEL_SERVICE_NAME=gateway-under-test"),
		ServiceAEnv: otel,
		ServiceBEnv: otel,
		GatewayArgs: []string{"-log-format", "json"},
	})

	product := createProduct(t, s, "traced pen", 5, 300)
	user := newID()
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, product))
	eventually(t, syncTimeout, func() string {
		if items, source := restCart(t, s, "/cart?user_id="+str(user)); len(items) != 1 || source == "fallback" {
			return fmt.Sprintf("B's cart has %d items (source %q), want 1 from B", len(items), source)
		}
		return ""
	})

	const (
		traceID      = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpanID = "00f067aa0ba902b7"
	)
	h, _ := do(t, s, http.StatusOK, "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, user),
		"Traceparent", "00-"+traceID+"-"+callerSpanID+"-01")
	if got := h.Get("Traceparent"); !strings.HasPrefix(got, "00-"+traceID+"-") || strings.Contains(got, callerSpanID) {
		t.Errorf("response traceparent %q, want the gateway's span in trace %s", got, traceID)
	}
	eventually(t, syncTimeout, func() string {
		if items, _ := restCart(t, s, "/cart/fallback/"+str(user)); len(items) != 0 {
			return fmt.Sprintf("A's cart after paying has %d items, want none", len(items))
		}
		return ""
	})

	var (
		spans []span
		chain map[string]span
	)
	eventually(t, 30*time.Second, func() string {
		spans = rcv.trace(traceID)
		var missing string
		chain, missing = payTrace(spans, callerSpanID)
		return missing
	})
	t.Logf("trace %s: %d spans", traceID, len(spans))
	for name, sp := range chain {
		t.Logf("  %-22s %v", name, sp)
	}
	if got, want := chain["gateway server"].service, "gateway-under-test"; got != want {
		t.Errorf("gateway service.name %q, want %q (OTEL_SERVICE_NAME)", got, want)
	}
	if got, want := chain["gateway server"].name, "POST /order/pay"; got != want {
		t.Errorf("gateway server span named %q, want %q", got, want)
	}

	// The access log line of the payment leads to the trace.
	logs, err := os.ReadFile(filepath.Join(s.Dir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(logs), "\n") {
		if strings.Contains(line, `"path":"/order/pay"`) &&
			strings.Contains(line, `"trace_id":"`+traceID+`"`) &&
			strings.Contains(line, `"span_id":"`+chain["gateway server"].id+`"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no access-log line for /order/pay with trace_id %s and span_id %s", traceID, chain["gateway server"].id)
	}
}

// payTrace finds the spans of a payment in one trace and checks their
// parent links; it returns them by role, or what is missing.
func payTrace(spans []span, callerSpanID string) (map[string]span, string) {
	byID := map[string]span{}
	for _, s := range spans {
		byID[s.id] = s
	}
	// under reports whether s descends from ancestor within the trace.
	under := func(s, ancestor span) bool {
		for p, ok := byID[s.parent]; ok; p, ok = byID[p.parent] {
			if p.id == ancestor.id {
				return true
			}
		}
		return false
	}
	find := func(match func(span) bool) (span, bool) {
		for _, s := range spans {
			if match(s) {
				return s, true
			}
		}
		return span{}, false
	}
	chain := map[string]span{}
	steps := []struct {
		role  string
		match func(span) bool
	}{
		{"gateway server", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_SERVER && s.parent == callerSpanID
		}},
		{"gateway upstream call", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_CLIENT && s.service == chain["gateway server"].service &&
				under(s, chain["gateway server"])
		}},
		{"service_b server", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_SERVER && s.service == "service_b" &&
				s.parent == chain["gateway upstream call"].id
		}},
		{"service_b call to A", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_CLIENT && s.service == "service_b" &&
				under(s, chain["service_b server"])
		}},
		{"service_a process_stock", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_SERVER && s.service == "service_a" &&
				s.parent == chain["service_b call to A"].id && strings.Contains(s.name, "/order/process_stock")
		}},
		{"service_b OrderPaid publish", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_PRODUCER && s.service == "service_b" &&
				under(s, chain["service_b server"])
		}},
		{"service_a OrderPaid consume", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_CONSUMER && s.service == "service_a" &&
				s.parent == chain["service_b OrderPaid publish"].id
		}},
		{"gateway event publish", func(s span) bool {
			return s.kind == tracepb.Span_SPAN_KIND_PRODUCER && s.service == chain["gateway server"].service &&
				s.parent == chain["gateway server"].id
		}},
	}
	for _, st := range steps {
		s, ok := find(st.match)
		if !ok {
			var have []string
			for _, s := range spans {
				have = append(have, s.String())
			}
			return chain, fmt.Sprintf("no span for %q in the trace; have:\n  %s", st.role, strings.Join(have, "\n  "))
		}
		chain[st.role] = s
	}
	return chain, ""
}
