package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// served is a gateway front end on real listeners with the given limits.
type served struct {
	url, grpcAddr string
	calls         *atomic.Int64
}

func serveWithLimits(tb testing.TB, lim server.Limits) *served {
	tb.Helper()
	return serveConfig(tb, server.Config{Limits: lim})
}

// serveConfig serves cfg with the test's services, handler and logger.
func serveConfig(tb testing.TB, cfg server.Config) *served {
	tb.Helper()
	calls := &atomic.Int64{}
	cfg.Handler = func(ctx context.Context, fullMethod string, req, resp proto.Message) error {
		calls.Add(1)
		return fakeHandler(ctx, fullMethod, req, resp)
	}
	cfg.Services, cfg.Register = app.Services(), app.Registers()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	hl, gl := loopbackListeners(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeListeners(ctx, hl, gl)
	}()
	tb.Cleanup(func() { cancel(); <-done })
	return &served{url: "http://" + hl.Addr().String(), grpcAddr: gl.Addr().String(), calls: calls}
}

// getStock is the normal client: a fresh connection, GET /stock/1.
func (s *served) getStock(tb testing.TB) int {
	tb.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(s.url + "/stock/1")
	if err != nil {
		tb.Errorf("normal client: %v", err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// dialFrom opens a TCP connection to the REST port from a loopback source
// address (127.0.0.x), so that tests can be several clients.
func (s *served) dialFrom(tb testing.TB, src string) net.Conn {
	tb.Helper()
	return dialTo(tb, src, strings.TrimPrefix(s.url, "http://"))
}

// closedWithin reads from c until it is closed by the server, failing tb if
// that takes longer than d; it returns what was read.
func closedWithin(tb testing.TB, c net.Conn, d time.Duration) string {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	data, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		tb.Fatalf("the server kept the connection open for %v (read so far %q)", d, data)
	}
	return string(data)
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	s := serveWithLimits(t, server.Limits{MaxBodyBytes: 100})
	big := fmt.Sprintf(`{"product_id":1,"product_name":%q,"quantity":1,"price_cents":1}`, strings.Repeat("x", 200))
	for name, chunked := range map[string]bool{"Content-Length": false, "chunked": true} {
		t.Run(name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(big)
			if chunked {
				body = io.MultiReader(strings.NewReader(big)) // no length known: sent chunked
			}
			req, _ := http.NewRequest("POST", s.url+"/stock", body)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got, want := resp.StatusCode, http.StatusRequestEntityTooLarge; got != want {
				t.Fatalf("status %d %s, want %d", got, raw, want)
			}
			if !strings.Contains(string(raw), `"code":8`) || !strings.Contains(string(raw), "larger than 100 bytes") {
				t.Errorf("body %s, want a RESOURCE_EXHAUSTED google.rpc.Status naming the limit", raw)
			}
		})
	}
	if got := s.calls.Load(); got != 0 {
		t.Errorf("handler called %d times for oversized bodies, want 0", got)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	t.Parallel()
	s := serveWithLimits(t, server.Limits{MaxHeaderBytes: 4 << 10})
	req, _ := http.NewRequest("GET", s.url+"/stock/1", nil)
	req.Header.Set("X-Big", strings.Repeat("y", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusRequestHeaderFieldsTooLarge; got != want {
		t.Errorf("status %d, want %d", got, want)
	}
	if got, want := s.getStock(t), http.StatusOK; got != want {
		t.Errorf("a normal request: %d, want %d", got, want)
	}
}

func TestGRPCMessageTooLarge(t *testing.T) {
	t.Parallel()
	s := serveWithLimits(t, server.Limits{MaxBodyBytes: 1024})
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = stockv1.NewStockServiceClient(cc).CreateStock(ctx, &stockv1.CreateStockRequest{
		Item: &stockv1.StockItem{ProductId: 1, ProductName: strings.Repeat("x", 2048)}})
	if got, want := status.Code(err), codes.ResourceExhausted; got != want {
		t.Errorf("2 KiB message: %v, want %v", err, want)
	}
	if _, err := stockv1.NewStockServiceClient(cc).GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1}); err != nil {
		t.Errorf("a small message after it: %v", err)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	s := serveWithLimits(t, server.Limits{CORSOrigins: []string{"https://shop.example"}})
	preflight := func(origin, method, path string) http.Header {
		req, _ := http.NewRequest("OPTIONS", s.url+path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		// Browsers send the list lower-case and sorted (Fetch standard).
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,grpc-timeout,idempotency-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("preflight %s %s from %s: status %d, want 2xx", method, path, origin, resp.StatusCode)
		}
		return resp.Header
	}
	for _, rt := range []struct{ method, path string }{
		{"GET", "/stock"}, {"POST", "/cart/add"}, {"DELETE", "/cart/5"}, {"PUT", "/stock/1"}, {"POST", "/order/process_stock"},
	} {
		h := preflight("https://shop.example", rt.method, rt.path)
		if got := h.Get("Access-Control-Allow-Origin"); got != "https://shop.example" {
			t.Errorf("allowed origin, %s %s: Allow-Origin %q", rt.method, rt.path, got)
		}
		if got := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "authorization") || !strings.Contains(got, "idempotency-key") || !strings.Contains(got, "grpc-timeout") {
			t.Errorf("allowed origin, %s %s: Allow-Headers %q", rt.method, rt.path, got)
		}
	}
	if h := preflight("https://evil.example", "POST", "/cart/add"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disallowed origin got Allow-Origin %q", h.Get("Access-Control-Allow-Origin"))
	}
	req, _ := http.NewRequest("GET", s.url+"/stock/1", nil)
	req.Header.Set("Origin", "https://shop.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	exposed := resp.Header.Get("Access-Control-Expose-Headers")
	for _, h := range []string{"X-Request-Id", "X-Cart-Source", "Idempotency-Replayed", "Retry-After", "Ratelimit"} {
		if !strings.Contains(strings.ToLower(exposed), strings.ToLower(h)) {
			t.Errorf("Expose-Headers %q lacks %s", exposed, h)
		}
	}
}

// TestSlowClientsCutOff: a body trickling in and a header trickling in
// (slowloris) are cut off by the read timeouts while a normal client is
// served.
func TestSlowClientsCutOff(t *testing.T) {
	t.Parallel()
	s := serveWithLimits(t, server.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second})
	slowBody := s.dialFrom(t, "127.0.0.1")
	fmt.Fprintf(slowBody, "POST /stock HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	slowHeader := s.dialFrom(t, "127.0.0.1")
	fmt.Fprintf(slowHeader, "GET /stock/1 HTTP/1.1\r\n")
	stop := make(chan struct{})
	defer close(stop)
	for _, c := range []net.Conn{slowBody, slowHeader} {
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
				}
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}()
	}
	if got, want := s.getStock(t), http.StatusOK; got != want {
		t.Errorf("normal client while slow ones trickle: %d, want %d", got, want)
	}
	closedWithin(t, slowHeader, 15*time.Second)
	closedWithin(t, slowBody, 15*time.Second)
	if got, want := s.getStock(t), http.StatusOK; got != want {
		t.Errorf("normal client after: %d, want %d", got, want)
	}
	if got := s.calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2 (the normal client's)", got)
	}
}

// TestConnectionCaps: connections over the per-address cap get 429, over
// the overall cap 503, each a google.rpc.Status, while a client within the
// caps is served; closing connections frees their slots.
func TestConnectionCaps(t *testing.T) {
	t.Parallel()
	// Held connections stay silent: no first-byte bound, so that only the
	// caps decide here (TestFloodFromFourAddresses has the bound).
	s := serveWithLimits(t, server.Limits{MaxConns: 5, MaxConnsPerIP: 2, FirstByteTimeout: -1})
	var held []net.Conn
	hold := func(src string) { held = append(held, s.dialFrom(t, src)) }
	refused := func(src, want string) {
		t.Helper()
		c := s.dialFrom(t, src)
		got := closedWithin(t, c, 10*time.Second)
		if !strings.HasPrefix(got, want) || !strings.Contains(got, `"code":`) {
			t.Errorf("connection from %s: %q, want %q with a status body", src, got, want)
		}
	}
	hold("127.0.0.2")
	hold("127.0.0.2")
	waitOpen := func() { time.Sleep(100 * time.Millisecond) }
	waitOpen()
	refused("127.0.0.2", "HTTP/1.1 429")
	if got, want := s.getStock(t), http.StatusOK; got != want {
		t.Errorf("another address while one is at its cap: %d, want %d", got, want)
	}
	// Fill the overall cap from new addresses until one is refused: the
	// normal client's connection may still hold a slot for a moment, so the
	// exact count of accepted ones is not fixed, but a refusal must come.
	got503 := false
	for i := 3; i < 12 && !got503; i++ {
		c := s.dialFrom(t, fmt.Sprintf("127.0.0.%d", i))
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		switch {
		case n == 0: // accepted and waiting for a request: held
			held = append(held, c)
		case strings.HasPrefix(string(buf[:n]), "HTTP/1.1 503"):
			got503 = true
		default:
			t.Fatalf("connection from 127.0.0.%d: %q, want held or a 503", i, buf[:n])
		}
	}
	if !got503 {
		t.Fatalf("no 503 after %d held connections with a cap of 5", len(held))
	}
	if len(held) > 5 {
		t.Errorf("%d connections held open, want at most the cap of 5", len(held))
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(s.url + "/stock/1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing the held connections: %v %v, want 200", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFloodFromFourAddresses: four addresses opening many silent
// connections to both ports get no more than their share (the rest is
// refused, 429 on REST), a normal client is served over REST and gRPC
// meanwhile, and the silent connections are closed at the first-byte
// bound, long before the header timeout.
func TestFloodFromFourAddresses(t *testing.T) {
	t.Parallel()
	const bound = time.Second
	s := serveWithLimits(t, server.Limits{MaxConns: 64, FirstByteTimeout: bound}) // 4 per address
	var silent []net.Conn
	refused429 := 0
	start := time.Now()
	for i := 2; i <= 5; i++ {
		src := fmt.Sprintf("127.0.0.%d", i)
		for range 8 {
			silent = append(silent, dialTo(t, src, strings.TrimPrefix(s.url, "http://")), dialTo(t, src, s.grpcAddr))
		}
	}
	// The REST connections over the share are answered 429 at once.
	for _, c := range silent {
		if c.RemoteAddr().String() != strings.TrimPrefix(s.url, "http://") {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 32)
		if n, _ := c.Read(buf); strings.HasPrefix(string(buf[:n]), "HTTP/1.1 429") {
			refused429++
		}
	}
	if got, want := refused429, 4*(8-4); got != want {
		t.Errorf("REST connections refused with 429: %d, want %d (8 per address, 4 allowed)", got, want)
	}
	if got, want := s.getStock(t), http.StatusOK; got != want {
		t.Errorf("normal REST client during the flood: %d, want %d", got, want)
	}
	cc, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := stockv1.NewStockServiceClient(cc).GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1}); err != nil {
		t.Errorf("normal gRPC client during the flood: %v", err)
	}
	// Every silent connection is closed by the server near the bound.
	for _, c := range silent {
		closedWithin(t, c, 3*bound)
	}
	if d := time.Since(start); d > 5*bound {
		t.Errorf("silent connections closed after %v, want about %v", d, bound)
	}
}

// dialTo opens a TCP connection to addr from a loopback source address.
func dialTo(tb testing.TB, src, addr string) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestTrustedProxyPassesThePerAddressCap: a trusted proxy's connections
// are held to the overall cap only; another address still gets 429 over
// its share.
func TestTrustedProxyPassesThePerAddressCap(t *testing.T) {
	t.Parallel()
	s := serveConfig(t, server.Config{
		Limits:         server.Limits{MaxConns: 8, MaxConnsPerIP: 1, FirstByteTimeout: -1},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	})
	answer := func(src string) string {
		t.Helper()
		c := s.dialFrom(t, src)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 16)
		n, _ := c.Read(buf)
		return string(buf[:n])
	}
	for i := range 3 {
		if got := answer("127.0.0.2"); got != "" {
			t.Errorf("the proxy's connection %d: %q, want it held open", i+1, got)
		}
	}
	if got := answer("127.0.0.3"); got != "" {
		t.Errorf("another address's first connection: %q, want it held open", got)
	}
	if got := answer("127.0.0.3"); !strings.HasPrefix(got, "HTTP/1.1 429") {
		t.Errorf("another address's second connection: %q, want 429", got)
	}
}
