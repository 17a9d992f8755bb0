package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// logBuffer is a bytes.Buffer safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// accessLines returns the decoded access-log lines written so far.
func (b *logBuffer) accessLines(tb testing.TB) []map[string]any {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["msg"] == "access" {
			out = append(out, line)
		}
	}
	return out
}

// TestAccessLogLine captures the JSON access line of REST and gRPC calls
// and checks every field.
func TestAccessLogLine(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	ts := newTestServerLog(t, slog.New(slog.NewJSONHandler(&logs, nil)))

	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	// Fields every access line has, whatever the call.
	always := []string{"time", "level", "msg", "protocol", "method", "path", "rpc", "upstream", "instance", "attempts", "duration_ms", "request_id", "trace_id", "span_id"}

	tests := []struct {
		name string
		call func(t *testing.T) (requestID string)
		want map[string]any
	}{
		{
			name: "REST with the caller's request id",
			call: func(t *testing.T) string {
				resp, _ := ts.do(t, "GET", "/stock/1", "", "X-Request-Id", "req-from-client-1")
				if got, want := resp.Header.Get("X-Request-Id"), "req-from-client-1"; got != want {
					t.Errorf("X-Request-Id echoed: got %q, want %q", got, want)
				}
				return "req-from-client-1"
			},
			want: map[string]any{"protocol": "http", "method": "GET", "path": "/stock/1",
				"rpc": "/shop.stock.v1.StockService/GetStock", "code": "OK", "status": float64(200), "level": "INFO"},
		},
		{
			name: "REST error with a generated request id",
			call: func(t *testing.T) string {
				resp, _ := ts.do(t, "GET", "/stock/2", "")
				id := resp.Header.Get("X-Request-Id")
				if !uuidV4.MatchString(id) {
					t.Errorf("generated X-Request-Id %q is not a v4 UUID", id)
				}
				return id
			},
			want: map[string]any{"protocol": "http", "method": "GET", "path": "/stock/2",
				"rpc": "/shop.stock.v1.StockService/GetStock", "code": "NotFound", "status": float64(404)},
		},
		{
			name: "REST with the caller's trace context",
			call: func(t *testing.T) string {
				ts.do(t, "GET", "/stock/1", "", "X-Request-Id", "req-with-trace-1",
					"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				return "req-with-trace-1"
			},
			want: map[string]any{"protocol": "http", "path": "/stock/1", "status": float64(200), "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
		},
		{
			name: "gRPC with the caller's request id",
			call: func(t *testing.T) string {
				ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "req-from-grpc-1")
				var hdr metadata.MD
				if _, err := stockv1.NewStockServiceClient(ts.grpc).GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1}, grpc.Header(&hdr)); err != nil {
					t.Fatal(err)
				}
				return "req-from-grpc-1"
			},
			want: map[string]any{"protocol": "grpc", "method": "POST", "path": "/shop.stock.v1.StockService/GetStock",
				"rpc": "/shop.stock.v1.StockService/GetStock", "code": "OK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.call(t)
			var line map[string]any
			for _, l := range logs.accessLines(t) {
				if l["request_id"] == id {
					if line != nil {
						t.Fatalf("two access lines for request id %q", id)
					}
					line = l
				}
			}
			if line == nil {
				t.Fatalf("no access line with request_id %q in %v", id, logs.accessLines(t))
			}
			for _, k := range always {
				if _, ok := line[k]; !ok {
					t.Errorf("access line has no %q: %v", k, line)
				}
			}
			for k, want := range tt.want {
				if got := line[k]; got != want {
					t.Errorf("%s: got %v, want %v", k, got, want)
				}
			}
			if _, ok := tt.want["status"]; !ok {
				if _, has := line["status"]; has {
					t.Errorf("a gRPC access line has an HTTP status: %v", line)
				}
			}
			if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms: got %v, want a number >= 0", line["duration_ms"])
			}
		})
	}
}
