package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// getURL fetches u without a token and returns the status and body.
func getURL(tb testing.TB, u string) (int, http.Header, string) {
	tb.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// TestPublicPortShowsOnlyTheAPI: the REST port does not serve the metrics
// or any profiler, and its /readyz is one word; the admin listener serves
// the metrics and the readiness of every dependency.
func TestPublicPortShowsOnlyTheAPI(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/vars"} {
		code, h, body := getURL(t, s.RESTURL()+path)
		if code != http.StatusNotFound || strings.Contains(body, "go_") || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("public GET %s = %d %q, want 404 (nosniff)", path, code, body)
		}
	}
	if code, _, body := getURL(t, s.RESTURL()+"/readyz"); code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Errorf("public GET /readyz = %d %s, want 200 {\"status\":\"ready\"} and nothing more", code, body)
	}
	code, _, body := getURL(t, s.AdminURL()+"/metrics")
	for _, want := range []string{"shop_gateway_requests_total", "shop_gateway_outbox_depth", "go_goroutines"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("admin GET /metrics = %d, want 200 with %s", code, want)
		}
	}
	code, ready := s.Readiness(t)
	for _, key := range []string{"service_a", "service_b", "kafka", "outbox"} {
		if _, ok := ready[key]; code != http.StatusOK || !ok {
			t.Errorf("admin GET /readyz = %d %v, want 200 with %s", code, ready, key)
		}
	}
}

// TestResponseHeaders: every REST answer, errors included, carries
// nosniff; public stock reads and the API document may be kept by a cache
// that revalidates (no-cache), anything of a user's and every error may not
// (no-store).
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	id := createProduct(t, s, "tea", 5, 100)
	user := newID()
	tok := harness.Bearer(s.Token(t, user, ""))
	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		wantStatus               int
		wantCache                string
	}{
		{"stock item", "GET", "/stock/" + str(id), "", nil, 200, "no-cache"},
		{"stock list", "GET", "/stock", "", nil, 200, "no-cache"},
		{"unknown product", "GET", "/stock/" + str(newID()), "", nil, 404, "no-store"},
		{"bad id", "GET", "/stock/x", "", nil, 400, "no-store"},
		{"add to cart", "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, id), []string{"Authorization", tok}, 200, "no-store"},
		{"cart", "GET", "/cart", "", []string{"Authorization", tok}, 200, "no-store"},
		{"orders", "GET", "/order", "", []string{"Authorization", tok}, 200, "no-store"},
		{"no token", "GET", "/cart", "", []string{"Authorization", ""}, 401, "no-store"},
		{"unknown path", "GET", "/nope", "", nil, 404, "no-store"},
		{"wrong method", "PATCH", "/stock/" + str(id), "", nil, 405, "no-store"},
		{"healthz", "GET", "/healthz", "", nil, 200, "no-store"},
		{"openapi", "GET", "/openapi.json", "", nil, 200, "no-cache"},
	} {
		code, h, _ := s.DoRaw(t, tc.method, tc.path, tc.body, tc.headers...)
		if code != tc.wantStatus {
			t.Errorf("%s: %s %s = %d, want %d", tc.name, tc.method, tc.path, code, tc.wantStatus)
			continue
		}
		if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", tc.name, got)
		}
		if got := h.Get("Cache-Control"); got != tc.wantCache {
			t.Errorf("%s: Cache-Control %q, want %q", tc.name, got, tc.wantCache)
		}
	}
}

// TestAmbiguousInputRefused: headers that decide what a request means,
// sent twice, a zero deadline and text with control characters are 400 /
// INVALID_ARGUMENT naming what is wrong, over REST and gRPC, refused at
// the gateway (no service sees them), and change nothing.
func TestAmbiguousInputRefused(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	id := createProduct(t, s, "tea", 5, 100)
	user := newID()
	tok := harness.Bearer(s.Token(t, user, ""))
	add := fmt.Sprintf(`{"product_id":%d,"quantity":1}`, id)

	t.Run("REST", func(t *testing.T) {
		// Every refusal is the gateway's: no service sees the request.
		before := settledCalls(t, s)
		defer func() {
			if after := settledCalls(t, s); after != before {
				t.Errorf("the services logged %d API calls during the refusals, want none", after-before)
			}
		}()
		for _, tc := range []struct {
			name, method, path, body string
			headers                  []string
			field                    string
		}{
			{"two Idempotency-Keys", "POST", "/cart/add", add, []string{"Authorization", tok, "Idempotency-Key", "k1", "Idempotency-Key", "k2"}, "Idempotency-Key"},
			{"two Authorizations", "POST", "/cart/add", add, []string{"Authorization", tok, "Authorization", harness.Bearer(s.AdminToken(t))}, "Authorization"},
			{"two Content-Types", "POST", "/cart/add", add, []string{"Authorization", tok, "Content-Type", "application/json", "Content-Type", "text/plain"}, "Content-Type"},
			{"two Grpc-Timeouts", "POST", "/cart/add", add, []string{"Authorization", tok, "Grpc-Timeout", "5S", "Grpc-Timeout", "10S"}, "Grpc-Timeout"},
			{"zero Grpc-Timeout", "POST", "/cart/add", add, []string{"Authorization", tok, "Grpc-Timeout", "0S"}, "Grpc-Timeout"},
			{"zero Grpc-Timeout, padded", "GET", "/cart", "", []string{"Authorization", tok, "Grpc-Timeout", "00000000m"}, "Grpc-Timeout"},
			{"NUL in a new name", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"a\u0000b","quantity":1,"price_cents":1}`, newID()), nil, "item.product_name"},
			{"newline in a name", "PUT", "/stock/" + str(id), `{"product_name":"tea\n","quantity":9,"price_cents":9}`, nil, "item.product_name"},
			{"escape in a name", "PUT", "/stock/" + str(id), `{"product_name":"\u001b[31mtea","quantity":9,"price_cents":9}`, nil, "item.product_name"},
			{"NUL in a page token", "GET", "/stock?page_token=1%00", "", nil, "page_token"},
		} {
			code, _, body := s.Do(t, tc.method, tc.path, tc.body, tc.headers...)
			wantStatusBody(t, tc.name, code, body, http.StatusBadRequest, codes.InvalidArgument)
			if fields, _, _ := restDetails(t, body); !slices.Equal(fields, []string{tc.field}) {
				t.Errorf("%s: field violations %v, want [%s]", tc.name, fields, tc.field)
			}
		}
	})
	t.Run("gRPC", func(t *testing.T) {
		userCtx := func(md ...string) context.Context {
			return metadata.AppendToOutgoingContext(harness.NoToken(rpcCtx(t)), md...)
		}
		bare := strings.TrimPrefix(tok, "Bearer ")
		req := &cartv1.AddCartItemRequest{ProductId: id, Quantity: 1}
		wantCode(t, "two authorizations", errOf(c.cart.AddCartItem(userCtx("authorization", tok, "authorization", harness.Bearer(s.AdminToken(t))), req)), codes.InvalidArgument)
		wantCode(t, "two idempotency keys", errOf(c.cart.AddCartItem(harness.WithToken(userCtx("idempotency-key", "k1", "idempotency-key", "k2"), bare), req)), codes.InvalidArgument)
		for name, item := range map[string]*stockv1.StockItem{
			"NUL":    {ProductId: newID(), ProductName: "a\x00b", Quantity: 1, PriceCents: 1},
			"C1":     {ProductId: newID(), ProductName: "tea\u0085", Quantity: 1, PriceCents: 1},
			"escape": {ProductId: newID(), ProductName: "\x1b[31m", Quantity: 1, PriceCents: 1},
		} {
			_, err := c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: item})
			wantCode(t, name, err, codes.InvalidArgument)
			if fields, _, _ := grpcDetails(t, err); !slices.Equal(fields, []string{"item.product_name"}) {
				t.Errorf("%s: field violations %v, want [item.product_name]", name, fields)
			}
			wantCode(t, name+": not created", errOf(c.stock.GetStock(rpcCtx(t), &stockv1.GetStockRequest{ProductId: item.GetProductId()})), codes.NotFound)
		}
	})
	// Nothing changed: the product as created, the user's carts empty.
	_, item := do(t, s, http.StatusOK, "GET", "/stock/"+str(id), "")
	wantItem(t, "product after the refusals", item, id, "tea", 5, 100)
	_, cart := do(t, s, http.StatusOK, "GET", "/cart/fallback/"+str(user), "")
	if items := list(t, cart, "items"); len(items) != 0 {
		t.Errorf("master cart after the refusals: %v, want empty", items)
	}
}

// TestConnectionFloodLeavesOthersServed: four addresses (127.0.0.2-5)
// opening silent connections to both ports as fast as they can hold only
// their share of a small cap, get 429 (REST) or a closed connection
// (gRPC) beyond it, and lose the rest at the first-byte bound; a normal
// client is served over REST and gRPC all along.
func TestConnectionFloodLeavesOthersServed(t *testing.T) {
	t.Parallel()
	const bound = time.Second
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-max-conns", "64", "-first-byte-timeout", bound.String()}}) // 4 per address
	c := newClients(t, s)
	restAddr := strings.TrimPrefix(s.RESTURL(), "http://")
	start := time.Now()
	var silent []net.Conn
	for i := 2; i <= 5; i++ {
		src := &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", i))}
		for range 8 {
			for _, addr := range []string{restAddr, s.GRPCAddr()} {
				d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
				conn, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("dial %s from %v: %v", addr, src, err)
				}
				t.Cleanup(func() { conn.Close() })
				silent = append(silent, conn)
			}
		}
	}
	refused := 0
	for _, conn := range silent {
		if conn.RemoteAddr().String() != restAddr {
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 16)
		if n, _ := conn.Read(buf); strings.HasPrefix(string(buf[:n]), "HTTP/1.1 429") {
			refused++
		}
	}
	if got, want := refused, 4*4; got != want {
		t.Errorf("REST connections refused with 429: %d, want %d (8 from each address, 4 allowed)", got, want)
	}
	// The normal client, from 127.0.0.1, on fresh connections.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Get(s.RESTURL() + "/stock")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("normal REST client during the flood: %v %v, want 200", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	ok(c.stock.ListStock(rpcCtx(t), &stockv1.ListStockRequest{}))(t, "normal gRPC client during the flood")
	for _, conn := range silent {
		_ = conn.SetReadDeadline(time.Now().Add(4 * bound))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("a silent connection to %v still open after %v: %v", conn.RemoteAddr(), time.Since(start), err)
		}
	}
	if d := time.Since(start); d > 5*bound {
		t.Errorf("silent connections closed after %v, want about %v", d, bound)
	}
}
