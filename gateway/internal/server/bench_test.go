package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/restchan"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
)

// BenchmarkRESTPath measures the gateway's own REST path (middleware,
// grpc-gateway transcoding, dispatch to the handler, access log) with a
// handler that answers at once, through the gateway's in-process channel
// and through grpchan's inprocgrpc channel (the design not chosen).
func BenchmarkRESTPath(b *testing.B) {
	for _, bc := range []struct {
		name    string
		channel server.RESTChannelFunc
	}{
		{name: "inproc"},
		{name: "grpchan", channel: restchan.Grpchan},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := server.New(server.Config{
				Services:    app.Services(),
				Register:    app.Registers(),
				Handler:     fakeHandler,
				Logger:      slog.New(slog.NewJSONHandler(io.Discard, nil)),
				RESTChannel: bc.channel,
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
