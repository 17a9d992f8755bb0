package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/apidocs"
	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// newCachingServer is a REST handler with the public RPCs cacheable, as
// the gateway wires it, and the API docs on.
func newCachingServer(tb testing.TB) *server.Server {
	tb.Helper()
	public := auth.PublicMethods(app.Services())
	srv, err := server.New(server.Config{
		Services:  app.Services(),
		Register:  app.Registers(),
		Handler:   fakeHandler,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Cacheable: func(m string) bool { return public[m] },
		APIDocs:   apidocs.New(),
		Ready:     []server.Check{{Name: "service_b", Func: func(context.Context) (any, error) { return nil, nil }}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// TestResponseHeaders: every REST answer, errors and routing errors
// included, carries nosniff and a Cache-Control: no-cache only on a
// successful public read (and the API docs), no-store on the rest.
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	srv := newCachingServer(t)
	for _, tc := range []struct {
		name, method, path, body string
		wantStatus               int
		wantCache                string
	}{
		{"public read", "GET", "/stock/1", "", 200, "no-cache"},
		{"public read, HEAD", "HEAD", "/stock/1", "", 200, "no-cache"},
		{"public read, not found", "GET", "/stock/9", "", 404, "no-store"},
		{"a user's cart", "GET", "/cart?user_id=3", "", 200, "no-store"},
		{"a mutation", "POST", "/stock", `{"product_id":2,"product_name":"x","quantity":1,"price_cents":1}`, 200, "no-store"},
		{"bad input", "GET", "/stock/abc", "", 400, "no-store"},
		{"unknown path", "GET", "/nope", "", 404, "no-store"},
		{"wrong method", "PATCH", "/stock/1", "", 405, "no-store"},
		{"healthz", "GET", "/healthz", "", 200, "no-store"},
		{"readyz", "GET", "/readyz", "", 200, "no-store"},
		{"openapi document", "GET", apidocs.DocumentPath, "", 200, "no-cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			srv.HTTPHandler().ServeHTTP(rec, req)
			if got, want := rec.Code, tc.wantStatus; got != want {
				t.Fatalf("status = %d %s, want %d", got, rec.Body, want)
			}
			if got, want := rec.Header().Get("X-Content-Type-Options"), "nosniff"; got != want {
				t.Errorf("X-Content-Type-Options = %q, want %q", got, want)
			}
			if got, want := rec.Header().Get("Cache-Control"), tc.wantCache; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
		})
	}
	for _, path := range []string{"/readyz", "/metrics", "/nope"} {
		rec := httptest.NewRecorder()
		srv.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("admin %s: headers %v, want nosniff and no-store", path, rec.Header())
		}
	}
}

// TestRepeatedHeadersREST: Content-Type, Idempotency-Key, Authorization
// and Grpc-Timeout sent twice are 400 INVALID_ARGUMENT naming the header,
// and the RPC is not called; each sent once is served.
func TestRepeatedHeadersREST(t *testing.T) {
	t.Parallel()
	const body = `{"product_id":2,"product_name":"x","quantity":1,"price_cents":1}`
	for _, tc := range []struct {
		name   string
		hdr    []string
		want   int
		fields []string
	}{
		{"each once", []string{"Content-Type", "application/json", "Idempotency-Key", "k1", "Authorization", "Bearer x", "Grpc-Timeout", "5S"}, 200, nil},
		{"two Content-Types", []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, 400, []string{"Content-Type"}},
		{"two Idempotency-Keys", []string{"Idempotency-Key", "k1", "Idempotency-Key", "k2"}, 400, []string{"Idempotency-Key"}},
		{"two Authorizations", []string{"Authorization", "Bearer a", "Authorization", "Bearer b"}, 400, []string{"Authorization"}},
		{"two Grpc-Timeouts", []string{"Grpc-Timeout", "5S", "Grpc-Timeout", "5S"}, 400, []string{"Grpc-Timeout"}},
		{"two of two", []string{"Idempotency-Key", "k1", "Idempotency-Key", "k1", "Authorization", "Bearer a", "Authorization", "Bearer a"}, 400, []string{"Idempotency-Key", "Authorization"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			resp, out := ts.do(t, "POST", "/stock", body, tc.hdr...)
			if got, want := resp.StatusCode, tc.want; got != want {
				t.Fatalf("status = %d %v, want %d", got, out, want)
			}
			if tc.want == 200 {
				return
			}
			if got := ts.calls.Load(); got != 0 {
				t.Errorf("the RPC was called %d times, want none", got)
			}
			if got, want := out["code"], float64(codes.InvalidArgument); got != want {
				t.Errorf("code = %v, want %v", got, want)
			}
			if got := fieldViolations(out); strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("field violations %v, want %v", got, tc.fields)
			}
		})
	}
}

// TestRepeatedMetadataGRPC: authorization or idempotency-key metadata sent
// twice is INVALID_ARGUMENT before the RPC; once each is served.
func TestRepeatedMetadataGRPC(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, tc := range []struct {
		name string
		md   []string
		want codes.Code
	}{
		{"each once", []string{"authorization", "Bearer a", "idempotency-key", "k1"}, codes.OK},
		{"two authorizations", []string{"authorization", "Bearer a", "authorization", "Bearer b"}, codes.InvalidArgument},
		{"two idempotency keys", []string{"idempotency-key", "k1", "idempotency-key", "k2"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.calls.Load()
			ctx := metadata.AppendToOutgoingContext(context.Background(), tc.md...)
			_, err := cartv1.NewCartServiceClient(ts.grpc).GetCart(ctx, &cartv1.GetCartRequest{UserId: 3})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == codes.OK {
				return
			}
			if got := ts.calls.Load() - before; got != 0 {
				t.Errorf("the RPC was called %d times, want none", got)
			}
			if !strings.Contains(status.Convert(err).Message(), "more than once") {
				t.Errorf("message %q, want it to say what was repeated", status.Convert(err).Message())
			}
		})
	}
}

// TestAdminListener: ServeAdminListeners serves the metrics and the
// readiness details on the admin listener only; the public port answers
// 404 for /metrics and the bare verdict on /readyz.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	srv := newCachingServer(t)
	hl, gl := loopbackListeners(t)
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeAdminListeners(ctx, hl, gl, al)
	}()
	t.Cleanup(func() { cancel(); <-done })
	get := func(base, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if code, body := get(hl.Addr().String(), "/readyz"); code != 200 || strings.TrimSpace(body) != `{"status":"ready"}` {
		t.Errorf("public /readyz = %d %s, want 200 {\"status\":\"ready\"}", code, body)
	}
	if code, body := get(al.Addr().String(), "/readyz"); code != 200 || !strings.Contains(body, `"service_b"`) {
		t.Errorf("admin /readyz = %d %s, want 200 with the checks", code, body)
	}
	if code, _ := get(hl.Addr().String(), "/metrics"); code != 404 {
		t.Errorf("public /metrics = %d, want 404", code)
	}
	// The gRPC port still serves beside them.
	cc, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := stockv1.NewStockServiceClient(cc).GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1}); err != nil {
		t.Errorf("gRPC beside the admin listener: %v", err)
	}
}
