package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// maxMessage is the bound on an error message the gateway promises
// (apierr.MaxMessageBytes), restated here as the contract under test.
const maxMessage = 320

// TestStrictInput sends what a lenient JSON decoder would accept and
// apply: trailing data, a wrong Content-Type, null for a field, a
// replacement with fields left out; and malformed or oversized input over
// gRPC. Each must be refused with a bounded message free of parser
// internals, and the state read back unchanged.
func TestStrictInput(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	p := createProduct(t, s, "strict", 5, 100)
	user, empty := newID(), newID()
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, p))
	waitCart(t, s, user, 1)
	before := takeSnapshot(t, s, user, empty)

	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf(`{"product_id":%d,"quantity":1}`, newID())
	}
	manyBody := `{"items":[` + strings.Join(many, ",") + `]}`
	addBody := fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, p)

	t.Run("REST", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			method, path string
			body         string
			contentType  string
			wantStatus   int
			wantInMsg    string
		}{
			{name: "trailing garbage", method: "POST", path: "/cart/add", body: addBody + ` trailing {{{`, wantStatus: 400, wantInMsg: "after the JSON value"},
			{name: "second JSON value", method: "POST", path: "/cart/add", body: addBody + addBody, wantStatus: 400, wantInMsg: "after the JSON value"},
			{name: "text/plain", method: "POST", path: "/cart/add", body: addBody, contentType: "text/plain", wantStatus: 415, wantInMsg: "application/json"},
			{name: "form", method: "PUT", path: "/stock/" + str(p), body: `{"product_name":"x","quantity":1,"price_cents":1}`, contentType: "application/x-www-form-urlencoded", wantStatus: 415},
			{name: "JSON in latin-1", method: "POST", path: "/cart/add", body: addBody, contentType: "application/json; charset=iso-8859-1", wantStatus: 415},
			{name: "null quantity", method: "POST", path: "/cart/add", body: fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":null}`, user, p), wantStatus: 400, wantInMsg: "quantity: must not be null"},
			{name: "null price on update", method: "PUT", path: "/stock/" + str(p), body: `{"product_name":"x","quantity":1,"price_cents":null}`, wantStatus: 400, wantInMsg: "price_cents: must not be null"},
			{name: "null line", method: "POST", path: "/order/process_stock", body: `{"items":[null]}`, wantStatus: 400, wantInMsg: "items[0]: must not be null"},
			{name: "null in a line", method: "POST", path: "/order/process_stock", body: fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":null}]}`, p), wantStatus: 400, wantInMsg: "items[0].quantity"},
			{name: "update leaves out price", method: "PUT", path: "/stock/" + str(p), body: `{"product_name":"x","quantity":1}`, wantStatus: 400, wantInMsg: "price_cents: is required"},
			{name: "update leaves out everything", method: "PUT", path: "/stock/" + str(p), body: `{}`, wantStatus: 400, wantInMsg: "is required"},
			{name: "update without body", method: "PUT", path: "/stock/" + str(p), wantStatus: 400, wantInMsg: "item: is required"},
			{name: "set level leaves out quantity", method: "POST", path: "/stock/update", body: fmt.Sprintf(`{"product_id":%d}`, p), wantStatus: 400, wantInMsg: "quantity: is required"},
			{name: "path id not a number", method: "GET", path: "/stock/abc", wantStatus: 400, wantInMsg: "product_id"},
			{name: "query id not a number", method: "GET", path: "/cart?user_id=abc", wantStatus: 400, wantInMsg: "user_id"},
			{name: "id beyond int64", method: "GET", path: "/stock/9223372036854775808", wantStatus: 400, wantInMsg: "product_id"},
			{name: "huge unknown order", method: "POST", path: "/order/process_stock", body: manyBody, wantStatus: 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.contentType != "" {
					hdr = []string{"Content-Type", tc.contentType}
				}
				got, _, body := s.Do(t, tc.method, tc.path, tc.body, hdr...)
				if tc.wantStatus != 0 && got != tc.wantStatus {
					t.Fatalf("status %d %v, want %d", got, body, tc.wantStatus)
				}
				if got < 400 {
					t.Fatalf("status %d %v, want an error", got, body)
				}
				msg, _ := body["message"].(string)
				checkMessage(t, msg, tc.wantInMsg)
			})
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		items := make([]*orderv1.StockLine, 5000)
		for i := range items {
			items[i] = &orderv1.StockLine{ProductId: newID(), Quantity: 1}
		}
		conn := s.GRPCConn(t)
		for _, tc := range []struct {
			name      string
			err       error
			want      codes.Code
			wantInMsg string
		}{
			{"malformed message", conn.Invoke(rpcCtx(t), "/shop.cart.v1.CartService/AddCartItem", []byte{0xff, 0xff, 0xff, 0xff}, new([]byte), grpc.ForceCodecV2(rawCodec{})), codes.InvalidArgument, "not a valid shop.cart.v1.AddCartItemRequest"},
			{"truncated message", conn.Invoke(rpcCtx(t), "/shop.stock.v1.StockService/UpdateStock", []byte{0x12, 0x10, 0x0a}, new([]byte), grpc.ForceCodecV2(rawCodec{})), codes.InvalidArgument, ""},
			{"update without item", errOf(c.stock.UpdateStock(rpcCtx(t), &stockv1.UpdateStockRequest{ProductId: p})), codes.InvalidArgument, "item: is required"},
			{"update without name", errOf(c.stock.UpdateStock(rpcCtx(t), &stockv1.UpdateStockRequest{ProductId: p, Item: &stockv1.StockItem{Quantity: 1, PriceCents: 1}})), codes.InvalidArgument, "item.product_name: is required"},
			{"huge unknown order", errOf(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{Items: items})), codes.Unknown, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st := status.Convert(tc.err)
				if tc.err == nil {
					t.Fatal("the call succeeded, want an error")
				}
				if tc.want != codes.Unknown && st.Code() != tc.want {
					t.Errorf("code %v (%v), want %v", st.Code(), st.Message(), tc.want)
				}
				if st.Code() == codes.Internal || st.Code() == codes.Unknown {
					t.Errorf("code %v (%v), want the caller's fault", st.Code(), st.Message())
				}
				checkMessage(t, st.Message(), tc.wantInMsg)
			})
		}
	})

	t.Run("nothing changed", func(t *testing.T) {
		after := takeSnapshot(t, s, user, empty)
		if !reflect.DeepEqual(after, before) {
			t.Errorf("state after the bad requests:\n%+v\nwant it unchanged:\n%+v", after, before)
		}
	})
}

// checkMessage checks an error message: present, bounded, free of Go
// parser internals, and containing want.
func checkMessage(tb testing.TB, msg, want string) {
	tb.Helper()
	if msg == "" {
		tb.Errorf("empty error message, want an explanation")
	}
	if len(msg) > maxMessage {
		tb.Errorf("message of %d bytes, want at most %d: %.200q...", len(msg), maxMessage, msg)
	}
	for _, leak := range []string{"strconv.", "proto:", "(line ", "json: ", "grpc: error"} {
		if strings.Contains(msg, leak) {
			tb.Errorf("message %q shows parser internals (%q)", msg, leak)
		}
	}
	if !strings.Contains(msg, want) {
		tb.Errorf("message %q, want it to contain %q", msg, want)
	}
}

// rawCodec sends and receives raw bytes under the proto content-subtype,
// so that a test can put a malformed message on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// TestHeadersValidated sends an oversized and an unprintable X-Request-Id
// and invalid trace contexts over REST and gRPC: each must be replaced by a
// fresh value in the response, the upstream call and the event, while
// valid ones are kept and travel into the event as ce_traceparent and
// ce_tracestate.
func TestHeadersValidated(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	reader := harness.NewEventReader(t, harness.TopicStock)
	p := createProduct(t, s, "headers", 5, 100)

	validTP := "00-" + randHex(16) + "-" + randHex(8) + "-01"
	const validTS = "shop=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	long := strings.Repeat("r", 8192)
	type sent struct{ rid, tp, ts string }
	cases := []struct {
		name    string
		in      sent
		keepRID bool
		keepTP  bool
		keepTS  bool
	}{
		{name: "valid", in: sent{"rid-" + randHex(6), validTP, validTS}, keepRID: true, keepTP: true, keepTS: true},
		{name: "8 KB request id", in: sent{long, validTP, ""}, keepTP: true},
		{name: "request id with a space", in: sent{"a b " + randHex(4), validTP, ""}, keepTP: true},
		{name: "traceparent not hex", in: sent{"rid-" + randHex(6), "00-" + strings.Repeat("z", 32) + "-" + randHex(8) + "-01", validTS}, keepRID: true},
		{name: "traceparent zero trace id", in: sent{"rid-" + randHex(6), "00-" + strings.Repeat("0", 32) + "-" + randHex(8) + "-01", ""}, keepRID: true},
		{name: "traceparent version ff", in: sent{"rid-" + randHex(6), "ff" + validTP[2:], ""}, keepRID: true},
		{name: "traceparent 00 with extra", in: sent{"rid-" + randHex(6), validTP + "-00", ""}, keepRID: true},
		{name: "tracestate invalid", in: sent{"rid-" + randHex(6), validTP, "UPPER=1"}, keepRID: true, keepTP: true},
		{name: "tracestate too long", in: sent{"rid-" + randHex(6), validTP, "a=" + strings.Repeat("b", 600)}, keepRID: true, keepTP: true},
	}
	check := func(t *testing.T, in sent, keepRID, keepTP, keepTS bool, rid, tp, ts string) {
		t.Helper()
		if keepRID && rid != in.rid {
			t.Errorf("request id %q, want the valid one sent, %q", rid, in.rid)
		}
		if !keepRID && (rid == in.rid || rid == "" || len(rid) > 128) {
			t.Errorf("request id %.80q, want a fresh one instead of %.40q", rid, in.rid)
		}
		if keepTP && tp != in.tp {
			t.Errorf("traceparent %q, want the valid one sent, %q", tp, in.tp)
		}
		if !keepTP && (tp == in.tp || len(tp) != 55 || !strings.HasPrefix(tp, "00-")) {
			t.Errorf("traceparent %q, want a new trace instead of %q", tp, in.tp)
		}
		if keepTS && ts != in.ts {
			t.Errorf("tracestate %q, want the valid one sent, %q", ts, in.ts)
		}
		if !keepTS && ts != "" {
			t.Errorf("tracestate %.80q, want none", ts)
		}
	}
	var wantEvents []sent
	for i, tc := range cases {
		// The valid request ids differ per protocol, so that each event is
		// found by its id.
		in := tc.in
		if tc.keepRID {
			in.rid += "-rest"
		}
		t.Run("REST "+tc.name, func(t *testing.T) {
			hdr := []string{"X-Request-Id", in.rid, "Traceparent", in.tp}
			if in.ts != "" {
				hdr = append(hdr, "Tracestate", in.ts)
			}
			h, _ := do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, p, 100+i), hdr...)
			got := sent{h.Get("X-Request-Id"), h.Get("Traceparent"), h.Get("Tracestate")}
			check(t, in, tc.keepRID, tc.keepTP, tc.keepTS, got.rid, got.tp, got.ts)
			wantEvents = append(wantEvents, got)
		})
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			md := metadata.Pairs("x-request-id", tc.in.rid, "traceparent", tc.in.tp)
			if tc.in.ts != "" {
				md.Set("tracestate", tc.in.ts)
			}
			var h metadata.MD
			ctx := metadata.NewOutgoingContext(rpcCtx(t), md)
			ok(c.stock.SetStockLevel(ctx, &stockv1.SetStockLevelRequest{ProductId: p, Quantity: int32(200 + i)}, grpc.Header(&h)))(t, "SetStockLevel")
			got := sent{first(h, "x-request-id"), first(h, "traceparent"), first(h, "tracestate")}
			check(t, tc.in, tc.keepRID, tc.keepTP, tc.keepTS, got.rid, got.tp, got.ts)
			wantEvents = append(wantEvents, got)
		})
	}
	evs := reader.WaitMatching(t, len(wantEvents), 60*time.Second, func(e harness.Event) bool {
		return e.Key == str(p) && e.Type() == "shop.events.v1.StockUpdated"
	})
	byRID := map[string]harness.Event{}
	for _, e := range evs {
		byRID[e.Headers["x-request-id"]] = e
	}
	for _, w := range wantEvents {
		e, found := byRID[w.rid]
		if !found {
			t.Errorf("no event with x-request-id %q (the id the caller was answered with)", w.rid)
			continue
		}
		if got := e.Headers["ce_traceparent"]; got != w.tp {
			t.Errorf("event %s: ce_traceparent %q, want %q", w.rid, got, w.tp)
		}
		if got := e.Headers["ce_tracestate"]; got != w.ts {
			t.Errorf("event %s: ce_tracestate %q, want %q", w.rid, got, w.ts)
		}
		if _, found := e.Headers["traceparent"]; found {
			t.Errorf("event %s: a plain traceparent header, want only ce_traceparent", w.rid)
		}
	}
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
