package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func wantLine(t *testing.T, text, line string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in the scrape", line)
}

func TestObserveCountsEveryLabelSet(t *testing.T) {
	m := New()
	cart := "/shop.cart.v1.CartService/GetCart"
	m.Observe("http", &reqinfo.Info{RPC: cart, Code: codes.OK, Upstream: "service_b", Attempts: 2, Fallback: true}, 200, 30*time.Millisecond)
	m.Observe("http", &reqinfo.Info{RPC: cart, Code: codes.OK, Upstream: "service_b", Attempts: 1}, 200, 3*time.Millisecond)
	m.Observe("grpc", &reqinfo.Info{RPC: cart, Code: codes.Unavailable, Upstream: "service_b", Attempts: 3}, 0, time.Second)
	m.Observe("http", &reqinfo.Info{}, 404, time.Millisecond) // no route
	text := scrape(t, m)
	wantLine(t, text, `shop_gateway_requests_total{code="OK",protocol="http",rpc="`+cart+`",status="200"} 2`)
	wantLine(t, text, `shop_gateway_requests_total{code="Unavailable",protocol="grpc",rpc="`+cart+`",status="0"} 1`)
	wantLine(t, text, `shop_gateway_requests_total{code="",protocol="http",rpc="",status="404"} 1`)
	wantLine(t, text, `shop_gateway_upstream_attempts_total{upstream="service_b"} 6`)
	wantLine(t, text, `shop_gateway_fallback_total{rpc="`+cart+`"} 1`)
	wantLine(t, text, `shop_gateway_request_duration_seconds_count{protocol="http",rpc="`+cart+`"} 2`)
	wantLine(t, text, `shop_gateway_request_duration_seconds_bucket{protocol="http",rpc="`+cart+`",le="0.005"} 1`)
	if !strings.Contains(text, "go_goroutines") || !strings.Contains(text, "process_") {
		t.Error("the Go runtime and process collectors are not registered")
	}
}

func TestGaugeFuncIsReadAtScrape(t *testing.T) {
	m := New()
	v := 1.0
	m.GaugeFunc("shop_gateway_test_depth", "test", func() float64 { return v })
	wantLine(t, scrape(t, m), "shop_gateway_test_depth 1")
	v = 42
	wantLine(t, scrape(t, m), "shop_gateway_test_depth 42")
}
