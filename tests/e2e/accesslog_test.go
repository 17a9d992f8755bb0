package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/shopgateway/shop/tests/harness"
)

// accessLines reads the JSON access-log lines of the gateway's log file
// (other lines, such as the harness's own markers, are skipped).
func accessLines(tb testing.TB, path string) []map[string]any {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "access" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestAccessLogBufferedAndFlushedOnShutdown checks that the gateway binary
// holds its access-log lines in memory (no write per request) and still
// writes every one of them, with every field, when it is stopped.
func TestAccessLogBufferedAndFlushedOnShutdown(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		NoEvents:    true,
		GatewayArgs: []string{"-log-format", "json", "-log-flush-interval", "1h"},
	})
	id := "e2e-access-" + str(newID())
	path := "/stock/" + str(newID())
	status, hdr, _ := s.Do(t, http.MethodGet, path, "", "X-Request-Id", id)
	if got, want := status, http.StatusNotFound; got != want {
		t.Fatalf("GET %s: got %d, want %d", path, got, want)
	}
	if got := hdr.Get("X-Request-Id"); got != id {
		t.Errorf("X-Request-Id echoed: got %q, want %q", got, id)
	}
	for _, l := range accessLines(t, s.GatewayLog()) {
		if l["request_id"] == id {
			t.Fatalf("the access line was written before shutdown with a 1h flush interval: %v", l)
		}
	}

	s.StopGateway()

	var line map[string]any
	for _, l := range accessLines(t, s.GatewayLog()) {
		if l["request_id"] == id {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no access line with request_id %q after shutdown", id)
	}
	want := map[string]any{
		"level":      "INFO",
		"protocol":   "http",
		"method":     "GET",
		"path":       path,
		"rpc":        "/shop.stock.v1.StockService/GetStock",
		"code":       "NotFound",
		"status":     float64(http.StatusNotFound),
		"upstream":   "service_a",
		"instance":   s.ServiceAURL(),
		"attempts":   float64(1),
		"request_id": id,
	}
	for k, v := range want {
		if got := line[k]; got != v {
			t.Errorf("%s: got %v, want %v", k, got, v)
		}
	}
	if d, ok := line["duration_ms"].(float64); !ok || d <= 0 {
		t.Errorf("duration_ms: got %v, want a positive number", line["duration_ms"])
	}
	if ts, ok := line["time"].(string); !ok || !strings.Contains(ts, "T") {
		t.Errorf("time: got %v, want an RFC 3339 time", line["time"])
	}
}
