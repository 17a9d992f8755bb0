package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/restchan"
	"github.com/shopgateway/shop/gateway/internal/server"
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
