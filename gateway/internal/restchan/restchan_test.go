package restchan_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/restchan"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// handler answers GetStock for product 1 and NOT_FOUND otherwise.
func handler(_ context.Context, _ string, req, resp proto.Message) error {
	r, ok := req.(*stockv1.GetStockRequest)
	if !ok {
		return status.Error(codes.Unimplemented, "not in this test")
	}
	if r.GetProductId() != 1 {
		return status.Errorf(codes.NotFound, "product %d not found", r.GetProductId())
	}
	resp.(*stockv1.GetStockResponse).Item = &stockv1.StockItem{ProductId: 1, ProductName: "tea"}
	return nil
}

// Each channel carries a REST call to the handler through the interceptor
// chain, with the handler's answer and errors intact.
func TestChannelsReachTheHandlerThroughTheChain(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopback, closeLoopback, err := restchan.Loopback(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeLoopback)
	tests := []struct {
		name    string
		channel server.RESTChannelFunc
		lis     net.Listener
	}{
		{name: "grpchan", channel: restchan.Grpchan},
		{name: "loopback", channel: loopback, lis: lis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			srv, err := server.New(server.Config{
				Services: app.Services(),
				Register: app.Registers(),
				Handler:  handler,
				Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
				Interceptors: []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					calls.Add(1)
					return h(ctx, req)
				}},
				RESTChannel: tt.channel,
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.lis != nil {
				go func() { _ = srv.GRPCServer().Serve(tt.lis) }()
				t.Cleanup(srv.GRPCServer().Stop)
			}
			for _, c := range []struct {
				path     string
				wantCode int
				wantBody string
			}{
				{"/stock/1", http.StatusOK, `"product_name":"tea"`},
				{"/stock/2", http.StatusNotFound, "product 2 not found"},
			} {
				w := httptest.NewRecorder()
				srv.HTTPHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
				if got, want := w.Code, c.wantCode; got != want {
					t.Errorf("GET %s: status %d, want %d (body %s)", c.path, got, want, w.Body)
				}
				if got := w.Body.String(); !strings.Contains(strings.ReplaceAll(got, " ", ""), c.wantBody) && !strings.Contains(got, c.wantBody) {
					t.Errorf("GET %s: body %s, want it to contain %s", c.path, got, c.wantBody)
				}
			}
			if got, want := calls.Load(), int64(2); got != want {
				t.Errorf("interceptor saw %d calls, want %d", got, want)
			}
		})
	}
}
