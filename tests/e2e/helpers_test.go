// Package e2e tests the shop end to end: the gateway binary in front of the
// real service_a and service_b, against the real Kafka broker, over REST and
// over gRPC. Each top-level test starts its own stack (tests/harness) and
// runs in parallel with the others; ids are random per run, so the shared
// event topics can be read back without seeing another test's events.
//
// Run with the broker up (scripts/kafka.sh start): go test ./tests/e2e
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// syncTimeout bounds the wait for a change to travel between the services
// over Kafka (A's cart to B, B's order paid to A).
const syncTimeout = 20 * time.Second

// idBase puts every id of this run above 2^53, where a JSON number that went
// through a float64 would lose digits, and apart from other runs' ids.
var (
	idBase = int64(1)<<60 + rand.Int64N(1<<40)<<16
	idSeq  atomic.Int64
)

// newID returns an id unique to this test process.
func newID() int64 { return idBase + idSeq.Add(1) }

// str formats an int64 the way the gateway answers it (a JSON string).
func str(id int64) string { return fmt.Sprint(id) }

// clients are the generated gRPC clients of a stack.
type clients struct {
	stock stockv1.StockServiceClient
	cart  cartv1.CartServiceClient
	order orderv1.OrderServiceClient
}

func newClients(tb testing.TB, s *harness.Stack) clients {
	tb.Helper()
	conn := s.GRPCConn(tb)
	return clients{
		stock: stockv1.NewStockServiceClient(conn),
		cart:  cartv1.NewCartServiceClient(conn),
		order: orderv1.NewOrderServiceClient(conn),
	}
}

// rpcCtx is a context for one gRPC call, bounded and cancelled at cleanup.
func rpcCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// ok takes a gRPC call's results and returns a function that fails tb when
// the call failed and returns the response otherwise:
//
//	resp := ok(client.GetStock(ctx, req))(t, "GetStock")
func ok[T any](resp T, err error) func(tb testing.TB, what string) T {
	return func(tb testing.TB, what string) T {
		tb.Helper()
		if err != nil {
			tb.Fatalf("%s: %v, want success", what, err)
		}
		return resp
	}
}

// wantCode checks a gRPC call's status code.
func wantCode(tb testing.TB, what string, err error, want codes.Code) {
	tb.Helper()
	if got := status.Code(err); got != want {
		tb.Errorf("%s: code %v (%v), want %v", what, got, err, want)
	}
}

// errOf returns the error of a call's results, for tables of calls that
// must fail.
func errOf[T any](_ T, err error) error { return err }

// do is Stack.Do that also checks the status.
func do(tb testing.TB, s *harness.Stack, wantStatus int, method, path, body string, headers ...string) (http.Header, map[string]any) {
	tb.Helper()
	got, h, m := s.Do(tb, method, path, body, headers...)
	if got != wantStatus {
		tb.Fatalf("%s %s %s: status %d %v, want %d", method, path, body, got, m, wantStatus)
	}
	return h, m
}

// wantStatusBody checks a google.rpc.Status error body: the HTTP status,
// the gRPC code, a message and a details array.
func wantStatusBody(tb testing.TB, what string, gotStatus int, body map[string]any, wantStatus int, wantCode codes.Code) {
	tb.Helper()
	if gotStatus != wantStatus {
		tb.Errorf("%s: status %d %v, want %d", what, gotStatus, body, wantStatus)
		return
	}
	if body == nil {
		tb.Errorf("%s: body is not a JSON object, want a google.rpc.Status", what)
		return
	}
	if got, want := body["code"], float64(wantCode); got != want {
		tb.Errorf("%s: body code %v, want %v (%v) in %v", what, got, want, wantCode, body)
	}
	if msg, _ := body["message"].(string); msg == "" {
		tb.Errorf("%s: body message %q, want a non-empty explanation in %v", what, body["message"], body)
	}
	// Details are typed (TestErrorDetails checks them): BadRequest on bad
	// input, ErrorInfo on the errors clients branch on, RetryInfo on
	// UNAVAILABLE; none on other errors.
	d, ok := body["details"].([]any)
	if !ok {
		tb.Errorf("%s: body details %#v, want a list", what, body["details"])
	}
	switch wantCode {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.NotFound, codes.Unavailable:
	default:
		if len(d) != 0 {
			tb.Errorf("%s: body details %#v, want []", what, body["details"])
		}
	}
}

// list returns m[key] as a JSON array of objects ([] when absent: proto3
// JSON may leave an empty repeated field out).
func list(tb testing.TB, m map[string]any, key string) []map[string]any {
	tb.Helper()
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		tb.Fatalf("%q is %#v, want an array", key, v)
	}
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(map[string]any); !ok {
			tb.Fatalf("%q[%d] is %#v, want an object", key, i, e)
		}
	}
	return out
}

// wantInt64 checks that m[key] is the JSON string of want (proto3 JSON
// writes int64 as strings).
func wantInt64(tb testing.TB, what string, m map[string]any, key string, want int64) {
	tb.Helper()
	if got, ok := m[key].(string); !ok || got != str(want) {
		tb.Errorf("%s: %s = %#v, want the string %q", what, key, m[key], str(want))
	}
}

// wantInt32 checks that m[key] is the JSON number want.
func wantInt32(tb testing.TB, what string, m map[string]any, key string, want int) {
	tb.Helper()
	if got, ok := m[key].(float64); !ok || got != float64(want) {
		tb.Errorf("%s: %s = %#v, want the number %d", what, key, m[key], want)
	}
}

// eventually polls check until it returns "" or timeout passes, then fails
// tb with check's last complaint.
func eventually(tb testing.TB, timeout time.Duration, check func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// restCart returns the items of GET path and its X-Cart-Source header.
func restCart(tb testing.TB, s *harness.Stack, path string) ([]map[string]any, string) {
	tb.Helper()
	h, m := do(tb, s, http.StatusOK, "GET", path, "")
	return list(tb, m, "items"), h.Get("X-Cart-Source")
}

// createProduct creates a product over REST and returns its id.
func createProduct(tb testing.TB, s *harness.Stack, name string, quantity int, priceCents int64) int64 {
	tb.Helper()
	id := newID()
	do(tb, s, http.StatusOK, "POST", "/stock",
		fmt.Sprintf(`{"product_id":%d,"product_name":%q,"quantity":%d,"price_cents":%d}`, id, name, quantity, priceCents))
	return id
}

// stockOf returns the quantity on hand of a product, over REST.
func stockOf(tb testing.TB, s *harness.Stack, id int64) int {
	tb.Helper()
	_, m := do(tb, s, http.StatusOK, "GET", "/stock/"+str(id), "")
	q, ok := m["quantity"].(float64)
	if !ok {
		tb.Fatalf("GET /stock/%d: quantity %#v, want a number", id, m["quantity"])
	}
	return int(q)
}

// subset reports where want is not contained in got: every key of want
// must be in got with an equal value (recursively for objects).
func subset(want, got map[string]any) string {
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Sprintf("%q missing", k)
		}
		wm, wok := w.(map[string]any)
		gm, gok := g.(map[string]any)
		if wok && gok {
			if d := subset(wm, gm); d != "" {
				return k + "." + d
			}
			continue
		}
		if !reflect.DeepEqual(w, g) {
			return fmt.Sprintf("%q = %v, want %v", k, g, w)
		}
	}
	return ""
}

// decode parses an event value (protojson) into a map.
func decode(tb testing.TB, e harness.Event) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Value, &m); err != nil {
		tb.Fatalf("event %v: value is not a JSON object: %v", e, err)
	}
	return m
}
