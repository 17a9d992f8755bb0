package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/devkeys"
	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
)

// BenchmarkRESTPath measures the gateway's own REST path (middleware,
// grpc-gateway transcoding, in-process dispatch to the handler, access log)
// with a handler that answers at once.
func BenchmarkRESTPath(b *testing.B) {
	for _, bc := range []struct{ name string }{{name: "inproc"}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := server.New(server.Config{
				Services: app.Services(),
				Register: app.Registers(),
				Handler:  fakeHandler,
				Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.HTTPHandler()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/stock/1", nil))
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// BenchmarkRESTTracing measures the REST path with tracing off and on, in
// one run for a ratio: GET /stock/1 through the middleware and transcoding
// to a handler that makes one upstream HTTP call to a loopback server, as
// the forwarder does. On, the request gets a server span and the call a
// client span, batched to an exporter that drops them.
func BenchmarkRESTTracing(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"product_id":1}`)
	}))
	defer upstream.Close()
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			tr, err := telemetry.New(context.Background(), telemetry.Config{Enabled: on, Exporter: discardExporter{}})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = tr.Shutdown(context.Background()) }()
			base := http.DefaultTransport.(*http.Transport).Clone()
			base.MaxIdleConnsPerHost = 256
			client := &http.Client{Transport: tr.Transport(base)}
			handler := func(ctx context.Context, fullMethod string, req, resp proto.Message) error {
				r, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/stock/1", nil)
				if err != nil {
					return err
				}
				res, err := client.Do(r)
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return fakeHandler(ctx, fullMethod, req, resp)
			}
			cfg := server.Config{
				Services: app.Services(),
				Register: app.Registers(),
				Handler:  handler,
				Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
			}
			if tr.Enabled() {
				cfg.Tracing = tr
			}
			srv, err := server.New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			h := srv.HTTPHandler()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/stock/1", nil))
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// discardExporter drops every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkRESTPathAuth is BenchmarkRESTPath (in process) with the auth
// interceptor off, and on with a client reusing one RS256 token (verified
// once, then served from the cache): the gateway's own cost of
// authentication on a REST call, without a network or an upstream.
func BenchmarkRESTPathAuth(b *testing.B) {
	key, err := devkeys.Generate("RS256", "bench")
	if err != nil {
		b.Fatal(err)
	}
	jwks := filepath.Join(b.TempDir(), "jwks.json")
	if err := devkeys.WriteJWKS(jwks, key); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	token, err := key.Token(devkeys.Claims{Subject: "7", Issuer: "i", Audience: "a", IssuedAt: now, Expiry: now.Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on, cached token"
		}
		b.Run(name, func(b *testing.B) {
			acfg := auth.AuthorizerConfig{Services: app.Services(), Logger: log}
			if on {
				v, err := auth.NewVerifier(context.Background(), auth.Config{JWKS: jwks, Issuer: "i", Audience: []string{"a"}}, log)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(v.Close)
				acfg.Verifier = v
			}
			authz, err := auth.NewAuthorizer(acfg)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := server.New(server.Config{
				Services:     app.Services(),
				Register:     app.Registers(),
				Handler:      fakeHandler,
				Interceptors: []grpc.UnaryServerInterceptor{authz.Interceptor()},
				Logger:       log,
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.HTTPHandler()
			b.ReportAllocs()
			// CPU time per request: on a shared machine the wall time per
			// request depends on how much CPU other processes leave us.
			cpu0 := processCPU()
			b.Cleanup(func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") })
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					r := httptest.NewRequest(http.MethodGet, "/stock/1", nil)
					r.Header.Set("Authorization", "Bearer "+token)
					h.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// processCPU is the process's user and system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
