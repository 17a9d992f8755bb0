package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/metrics"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// fakeHandler answers GetStock for product 1, NOT_FOUND otherwise, panics on
// product 666, and marks GetCart as served by the fallback.
func fakeHandler(ctx context.Context, fullMethod string, req, resp proto.Message) error {
	switch r := req.(type) {
	case *stockv1.GetStockRequest:
		switch r.GetProductId() {
		case 1:
			resp.(*stockv1.GetStockResponse).Item = &stockv1.StockItem{ProductId: 1, ProductName: "tea", Quantity: 3, PriceCents: 250}
			return nil
		case 666:
			panic("boom")
		}
		return status.Errorf(codes.NotFound, "product %d not found", r.GetProductId())
	case *stockv1.CreateStockRequest:
		resp.(*stockv1.CreateStockResponse).Item = r.GetItem()
		return nil
	case *cartv1.GetCartRequest:
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-cart-source", "fallback"))
		resp.(*cartv1.GetCartResponse).UserId = r.GetUserId()
		return nil
	}
	return status.Error(codes.Unimplemented, fullMethod)
}

type testServer struct {
	srv   *server.Server
	http  *httptest.Server
	grpc  *grpc.ClientConn
	calls *atomic.Int64
}

func newTestServer(tb testing.TB) *testServer {
	tb.Helper()
	return newTestServerLog(tb, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newTestServerLog is newTestServer logging to log.
func newTestServerLog(tb testing.TB, log *slog.Logger) *testServer {
	tb.Helper()
	return newTestServerWith(tb, log, 1024)
}

// newTestServerBody is newTestServer taking bodies of up to maxBody bytes.
func newTestServerBody(tb testing.TB, maxBody int64) *testServer {
	tb.Helper()
	return newTestServerWith(tb, slog.New(slog.NewTextHandler(io.Discard, nil)), maxBody)
}

func newTestServerWith(tb testing.TB, log *slog.Logger, maxBody int64) *testServer {
	tb.Helper()
	calls := &atomic.Int64{}
	counting := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return handler(ctx, req)
	}
	srv, err := server.New(server.Config{
		Services:        app.Services(),
		ResponseHeaders: app.ResponseHeaders(),
		SingleMetadata:  auth.SingleMetadata,
		Register:        app.Registers(),
		Handler:         fakeHandler,
		Interceptors:    []grpc.UnaryServerInterceptor{counting},
		Logger:          log,
		Limits:          server.Limits{MaxBodyBytes: maxBody},
	})
	if err != nil {
		tb.Fatal(err)
	}
	hs, cc := serveTest(tb, srv)
	return &testServer{srv: srv, http: hs, grpc: cc, calls: calls}
}

// serveTest serves srv's REST handler and gRPC server on loopback until
// the test ends, and returns a gRPC client of it.
func serveTest(tb testing.TB, srv *server.Server) (*httptest.Server, *grpc.ClientConn) {
	tb.Helper()
	hs := httptest.NewServer(srv.HTTPHandler())
	tb.Cleanup(hs.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	tb.Cleanup(srv.GRPCServer().Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return hs, cc
}

func (ts *testServer) do(tb testing.TB, method, path, body string, hdr ...string) (*http.Response, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := ts.http.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
	}
	return resp, out
}

func TestRESTRoutingAndErrors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	cases := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   float64 // google.rpc.Status code; -1 for a success body
		wantAllow  string
	}{
		{"ok", "GET", "/stock/1", "", 200, -1, ""},
		{"not found from handler", "GET", "/stock/9", "", 404, 5, ""},
		{"unknown path", "GET", "/nope", "", 404, 5, ""},
		{"unknown deep path", "GET", "/stock/1/2/3", "", 404, 5, ""},
		{"wrong method", "PATCH", "/stock", "", 405, 12, "GET, POST"},
		{"wrong method on add", "PUT", "/cart/add", "{}", 405, 12, "POST"},
		{"GET on a POST-only literal path", "GET", "/order/pay", "", 405, 12, "POST"},
		{"GET on stock update", "GET", "/stock/update", "", 405, 12, "POST"},
		{"DELETE on cart add", "DELETE", "/cart/add", "", 405, 12, "POST"},
		{"GET on cart fallback", "GET", "/cart/fallback", "", 405, 12, "POST"},
		{"GET on process stock", "GET", "/order/process_stock", "", 405, 12, "POST"},
		{"malformed json", "POST", "/stock", "{", 400, 3, ""},
		{"wrong type", "POST", "/stock", `{"product_id":"abc"}`, 400, 3, ""},
		{"unknown field", "POST", "/stock", `{"product_idd":1}`, 400, 3, ""},
		{"bad path int", "GET", "/stock/abc", "", 400, 3, ""},
		{"body too large", "POST", "/stock", `{"product_name":"` + strings.Repeat("x", 2000) + `"}`, 413, 8, ""},
		{"panic is internal", "GET", "/stock/666", "", 500, 13, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := ts.do(t, tc.method, tc.path, tc.body)
			if got, want := resp.StatusCode, tc.wantStatus; got != want {
				t.Errorf("status = %d, want %d (body %v)", got, want, body)
			}
			if tc.wantCode >= 0 {
				if got, want := body["code"], tc.wantCode; got != want {
					t.Errorf("code = %v, want %v", got, want)
				}
				if msg, _ := body["message"].(string); msg == "" {
					t.Errorf("empty message in %v", body)
				}
				if _, ok := body["details"]; !ok {
					t.Errorf("no details in %v", body)
				}
			}
			if got, want := resp.Header.Get("Allow"), tc.wantAllow; got != want {
				t.Errorf("Allow = %q, want %q", got, want)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
}

func TestHEADIsGETWithoutBody(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	resp, err := ts.http.Client().Head(ts.http.URL + "/stock/1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if len(raw) != 0 {
		t.Errorf("HEAD body = %q, want none", raw)
	}
	resp, err = ts.http.Client().Head(ts.http.URL + "/stock/9")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("unknown product: status = %d, want %d", got, want)
	}
}

func TestRESTRunsInterceptorChainAndEchoesIDs(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	before := ts.calls.Load()
	resp, body := ts.do(t, "GET", "/stock/1", "", "X-Request-Id", "rid-42", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if got, want := ts.calls.Load()-before, int64(1); got != want {
		t.Errorf("interceptor calls = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("X-Request-Id"), "rid-42"; got != want {
		t.Errorf("X-Request-Id = %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("Traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"; got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
	if got, want := body["product_id"], "1"; got != want {
		t.Errorf("product_id = %v, want %v (int64 as string)", got, want)
	}
	if got, want := body["quantity"], float64(3); got != want {
		t.Errorf("quantity = %v, want %v", got, want)
	}
}

func TestRESTAcceptsInt64AsNumberOrString(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, body := range []string{`{"product_id":7,"product_name":"a","quantity":1,"price_cents":2}`, `{"product_id":"7","product_name":"a","quantity":1,"price_cents":"2"}`} {
		resp, out := ts.do(t, "POST", "/stock", body)
		if got, want := resp.StatusCode, 200; got != want {
			t.Fatalf("%s: status = %d, want %d", body, got, want)
		}
		if got, want := out["product_id"], "7"; got != want {
			t.Errorf("%s: product_id = %v, want %v", body, got, want)
		}
	}
}

func TestRESTFallbackHeaderAndEmptyList(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	resp, body := ts.do(t, "GET", "/cart/3", "")
	if got, want := resp.Header.Get("X-Cart-Source"), "fallback"; got != want {
		t.Errorf("X-Cart-Source = %q, want %q", got, want)
	}
	if got, ok := body["items"].([]any); !ok || len(got) != 0 {
		t.Errorf("items = %v, want []", body["items"])
	}
	resp, _ = ts.do(t, "GET", "/cart?user_id=3", "")
	if got, want := resp.Header.Get("X-Cart-Source"), "fallback"; got != want {
		t.Errorf("query form: X-Cart-Source = %q, want %q", got, want)
	}
}

func TestGRPCDirectRunsChainAndSetsHeaders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	before := ts.calls.Load()
	var hdr metadata.MD
	resp, err := stockv1.NewStockServiceClient(ts.grpc).GetStock(context.Background(), &stockv1.GetStockRequest{ProductId: 1}, grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.GetItem().GetProductName(), "tea"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	if got, want := ts.calls.Load()-before, int64(1); got != want {
		t.Errorf("interceptor calls = %d, want %d", got, want)
	}
	if len(hdr.Get("x-request-id")) != 1 {
		t.Errorf("no x-request-id header in %v", hdr)
	}
	_, err = stockv1.NewStockServiceClient(ts.grpc).GetStock(context.Background(), &stockv1.GetStockRequest{ProductId: 9})
	if got, want := status.Code(err), codes.NotFound; got != want {
		t.Errorf("code = %v, want %v", got, want)
	}
	var cartHdr metadata.MD
	if _, err := cartv1.NewCartServiceClient(ts.grpc).GetCart(context.Background(), &cartv1.GetCartRequest{UserId: 3}, grpc.Header(&cartHdr)); err != nil {
		t.Fatal(err)
	}
	if got := cartHdr.Get("x-cart-source"); len(got) != 1 || got[0] != "fallback" {
		t.Errorf("x-cart-source = %v, want [fallback]", got)
	}
	hc, err := healthpb.NewHealthClient(ts.grpc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v", hc, err)
	}
}

func TestHealthzAndReadyz(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	resp, body := ts.do(t, "GET", "/healthz", "")
	if got, want := resp.StatusCode, 200; got != want {
		t.Errorf("healthz = %d, want %d", got, want)
	}
	resp, body = ts.do(t, "GET", "/readyz", "")
	if got, want := resp.StatusCode, 200; got != want {
		t.Errorf("readyz = %d, want %d (%v)", got, want, body)
	}
}

// TestGracefulShutdownDrainsInFlight cancels the serve context while a slow
// REST request is in flight: the request still completes, /readyz is not
// served any more afterwards, and ServeListeners returns.
func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	slow := func(ctx context.Context, fullMethod string, req, resp proto.Message) error {
		close(started)
		<-release
		return fakeHandler(ctx, fullMethod, req, resp)
	}
	srv, err := server.New(server.Config{
		Services:        app.Services(),
		Register:        app.Registers(),
		Handler:         slow,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	hl, gl := loopbackListeners(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, hl, gl) }()

	url := "http://" + hl.Addr().String()
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get(url + "/stock/1")
		if err != nil {
			t.Errorf("in-flight request: %v", err)
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-started
	cancel()
	// Give Shutdown a moment to close the listener, then let the request
	// finish.
	for i := 0; i < 100; i++ {
		if _, err := http.Get(url + "/healthz"); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if status, want := <-got, http.StatusOK; status != want {
		t.Errorf("in-flight status = %d, want %d", status, want)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListeners = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListeners did not return after the drain")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
}

func TestMetricsCountRESTAndGRPC(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	srv, err := server.New(server.Config{
		Services: app.Services(),
		Register: app.Registers(),
		Handler:  fakeHandler,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observe:  m.Observe,
		Metrics:  m.Handler(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(hs.Close)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.GRPCServer().Serve(lis) }()
	t.Cleanup(srv.GRPCServer().Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })

	for _, path := range []string{"/stock/1", "/stock/1", "/stock/9", "/nope"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := stockv1.NewStockServiceClient(cc).GetStock(context.Background(), &stockv1.GetStockRequest{ProductId: 1}); err != nil {
		t.Fatal(err)
	}
	// The public port does not show the metrics; the admin handler does.
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("public GET /metrics = %d, want %d", got, want)
	}
	admin := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(admin.Close)
	resp, err = http.Get(admin.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	body := string(raw)
	for _, want := range []string{
		`shop_gateway_requests_total{code="OK",protocol="http",rpc="/shop.stock.v1.StockService/GetStock",status="200"} 2`,
		`shop_gateway_requests_total{code="NotFound",protocol="http",rpc="/shop.stock.v1.StockService/GetStock",status="404"} 1`,
		`shop_gateway_requests_total{code="",protocol="http",rpc="",status="404"} 2`,
		`shop_gateway_requests_total{code="OK",protocol="grpc",rpc="/shop.stock.v1.StockService/GetStock",status="0"} 1`,
		`shop_gateway_request_duration_seconds_count{protocol="http",rpc="/shop.stock.v1.StockService/GetStock"} 3`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// loopbackListeners returns a REST and a gRPC listener on free loopback
// ports, for a server the test serves with ServeListeners.
func loopbackListeners(tb testing.TB) (hl, gl net.Listener) {
	tb.Helper()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	gl, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hl.Close()
		tb.Fatal(err)
	}
	return hl, gl
}
