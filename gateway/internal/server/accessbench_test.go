package server

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/internal/logbuf"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// BenchmarkAccessLine is the cost of one access-log line through slog's
// JSON handler into the buffered writer, as the binary writes it.
func BenchmarkAccessLine(b *testing.B) {
	w, err := logbuf.New(io.Discard, logbuf.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	log := slog.New(slog.NewJSONHandler(w, nil))
	ri := &reqinfo.Info{RequestID: "0123456789abcdef0123456789abcdef", Traceparent: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
		RPC: "/shop.stock.v1.StockService/GetStock", Upstream: "service-a", Instance: "http://127.0.0.1:8002", Attempts: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		logAccess(ctx, log, ri, "http", "GET", "/stock/1", 200, 1234*time.Microsecond)
	}
}
