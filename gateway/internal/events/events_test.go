package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	eventsv1 "github.com/shopgateway/shop/gen/shop/events/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

const (
	setStockLevel = "/shop.stock.v1.StockService/SetStockLevel"
	getStock      = "/shop.stock.v1.StockService/GetStock"
	traceparent   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate    = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

var (
	tea      = &stockv1.StockItem{ProductId: 7, ProductName: "green tea", Quantity: 5, PriceCents: 350}
	cartItem = &cartv1.CartItem{ItemId: 11, UserId: 42, ProductId: 7, Quantity: 2, AddedAt: timestamppb.New(testTime)}
	order    = &orderv1.Order{OrderId: 99, UserId: 42, TotalCents: 700, Status: orderv1.OrderStatus_ORDER_STATUS_PAID,
		Items: []*orderv1.OrderItem{{ProductId: 7, Quantity: 2, PriceCents: 350}}}
)

func setLevelReq(q int32) *stockv1.SetStockLevelRequest {
	return &stockv1.SetStockLevelRequest{ProductId: 7, Quantity: q}
}

// TestEnvelope checks, for every RPC that emits, the record the outbox
// gets: topic, key, CloudEvents headers and payload.
func TestEnvelope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method      string
		resp        proto.Message
		wantTopic   string
		wantKey     string
		wantType    string
		wantSubject string // "" means no ce_subject header
		wantPayload proto.Message
	}{
		{"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockResponse{Item: tea},
			"shop.stock.v1", "7", "shop.events.v1.StockCreated", "7", &eventsv1.StockCreated{Item: tea}},
		{"/shop.stock.v1.StockService/UpdateStock", &stockv1.UpdateStockResponse{Item: tea},
			"shop.stock.v1", "7", "shop.events.v1.StockUpdated", "7", &eventsv1.StockUpdated{Item: tea}},
		{"/shop.stock.v1.StockService/DeleteStock", &stockv1.DeleteStockResponse{Item: tea},
			"shop.stock.v1", "7", "shop.events.v1.StockDeleted", "7", &eventsv1.StockDeleted{Item: tea}},
		{setStockLevel, &stockv1.SetStockLevelResponse{Item: tea},
			"shop.stock.v1", "7", "shop.events.v1.StockUpdated", "7", &eventsv1.StockUpdated{Item: tea}},
		{"/shop.cart.v1.CartService/AddCartItem", &cartv1.AddCartItemResponse{Item: cartItem},
			"shop.cart.v1", "42", "shop.events.v1.CartItemAdded", "11", &eventsv1.CartItemAdded{Item: cartItem}},
		{"/shop.cart.v1.CartService/RemoveCartItem", &cartv1.RemoveCartItemResponse{Item: cartItem},
			"shop.cart.v1", "42", "shop.events.v1.CartItemRemoved", "11", &eventsv1.CartItemRemoved{Item: cartItem}},
		{"/shop.order.v1.OrderService/PayOrder", &orderv1.PayOrderResponse{Order: order},
			"shop.order.v1", "42", "shop.events.v1.OrderPaid", "99", &eventsv1.OrderPaid{Order: order}},
		// One product: one event (TestSplit has several).
		{"/shop.order.v1.OrderService/ProcessOrderStock", &orderv1.ProcessOrderStockResponse{Items: []*stockv1.StockItem{tea}},
			"shop.stock.v1", "7", "shop.events.v1.StockProcessed", "", &eventsv1.StockProcessed{Items: []*stockv1.StockItem{tea}}},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			ob := &fakeOutbox{}
			em := newEmitter(t, ob, func(c *events.Config) {
				c.Source = "/shop-gateway/deployment-1"
				c.DataSchema = "https://shop.example/asyncapi.json"
			})
			h := &fakeHandler{resp: tc.resp}
			resp, err, _ := call(t, em, tc.method, &stockv1.GetStockRequest{}, h,
				"traceparent", traceparent, "tracestate", tracestate, "x-request-id", "req-1")
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if !proto.Equal(resp.(proto.Message), tc.resp) {
				t.Errorf("response changed: got %v, want %v", resp, tc.resp)
			}
			recs := ob.records()
			if got, want := len(recs), 1; got != want {
				t.Fatalf("appended %d records, want %d", got, want)
			}
			rec := recs[0]
			if got, want := rec.Topic, tc.wantTopic; got != want {
				t.Errorf("topic: got %q, want %q", got, want)
			}
			if got, want := string(rec.Key), tc.wantKey; got != want {
				t.Errorf("key: got %q, want %q", got, want)
			}
			hs := headers(rec)
			id, err := uuid.Parse(hs["ce_id"])
			if err != nil || id.Version() != 4 {
				t.Errorf("ce_id %q: want a UUIDv4 (%v)", hs["ce_id"], err)
			}
			want := map[string]string{
				"ce_specversion": "1.0",
				"ce_id":          hs["ce_id"],
				"ce_source":      "/shop-gateway/deployment-1",
				"ce_type":        tc.wantType,
				"ce_dataschema":  "https://shop.example/asyncapi.json#/components/schemas/" + tc.wantType,
				"ce_time":        "2026-03-14T15:09:26.535Z",
				"content-type":   "application/json",
				"ce_traceparent": traceparent,
				"ce_tracestate":  tracestate,
				"x-request-id":   "req-1",
			}
			if tc.wantSubject != "" {
				want["ce_subject"] = tc.wantSubject
			}
			if got := hs; !equalMaps(got, want) {
				t.Errorf("headers:\n got %v\nwant %v", got, want)
			}
			if got, want := len(rec.Headers), len(want); got != want {
				t.Errorf("%d headers, want %d (a header repeated?)", got, want)
			}
			got := tc.wantPayload.ProtoReflect().New().Interface()
			if err := protojson.Unmarshal(rec.Value, got); err != nil {
				t.Fatalf("payload %s: %v", rec.Value, err)
			}
			if !proto.Equal(got, tc.wantPayload) {
				t.Errorf("payload: got %v, want %v", got, tc.wantPayload)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestFormats checks the data encodings: JSON with proto names and every
// field present (like the REST API), or binary protobuf.
func TestFormats(t *testing.T) {
	t.Parallel()
	empty := &stockv1.StockItem{ProductId: 3, ProductName: "sold out"}
	cases := []struct {
		name     string
		format   events.Format
		wantCT   string
		wantJSON string // checked when the format is JSON
	}{
		{"json", events.FormatJSON, "application/json",
			`{"item":{"product_id":"3","product_name":"sold out","quantity":0,"price_cents":"0"}}`},
		{"default", "", "application/json",
			`{"item":{"product_id":"3","product_name":"sold out","quantity":0,"price_cents":"0"}}`},
		{"protobuf", events.FormatProtobuf, "application/protobuf", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ob := &fakeOutbox{}
			em := newEmitter(t, ob, func(c *events.Config) { c.Format = tc.format; c.Source = "/test" })
			h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: empty}}
			if _, err, _ := call(t, em, setStockLevel, setLevelReq(0), h); err != nil {
				t.Fatalf("call: %v", err)
			}
			rec := ob.records()[0]
			hs := headers(rec)
			if got, want := hs["content-type"], tc.wantCT; got != want {
				t.Errorf("content-type: got %q, want %q", got, want)
			}
			if got, want := hs["ce_source"], "/test"; got != want {
				t.Errorf("ce_source: got %q, want %q", got, want)
			}
			for _, h := range []string{"ce_traceparent", "ce_tracestate"} {
				if _, ok := hs[h]; ok {
					t.Errorf("%s header without a trace context in the request", h)
				}
			}
			if v, ok := hs["ce_dataschema"]; ok {
				t.Errorf("ce_dataschema %q without a DataSchema configured", v)
			}
			got := &eventsv1.StockUpdated{}
			if tc.format == events.FormatProtobuf {
				if err := proto.Unmarshal(rec.Value, got); err != nil {
					t.Fatalf("proto.Unmarshal: %v", err)
				}
			} else {
				if got, want := compactJSON(rec.Value), tc.wantJSON; got != want {
					t.Errorf("value:\n got %s\nwant %s", got, want)
				}
				if err := protojson.Unmarshal(rec.Value, got); err != nil {
					t.Fatalf("protojson.Unmarshal: %v", err)
				}
			}
			if want := (&eventsv1.StockUpdated{Item: empty}); !proto.Equal(got, want) {
				t.Errorf("payload: got %v, want %v", got, want)
			}
		})
	}
}

// TestConfigRefusesBadSourceAndDataSchema checks that ce_source and
// ce_dataschema take only what CloudEvents allows there.
func TestConfigRefusesBadSourceAndDataSchema(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*events.Config)
	}{
		{"source with a space", func(c *events.Config) { c.Source = "/shop gateway" }},
		{"source with a newline", func(c *events.Config) { c.Source = "/shop\nx-evil: 1" }},
		{"source too long", func(c *events.Config) { c.Source = "/" + strings.Repeat("a", events.MaxSourceLen) }},
		{"source not ASCII", func(c *events.Config) { c.Source = "/shöp" }},
		{"relative data schema", func(c *events.Config) { c.DataSchema = "/asyncapi.json" }},
		{"data schema with a fragment", func(c *events.Config) { c.DataSchema = "https://shop.example/asyncapi.json#/x" }},
		{"data schema with a space", func(c *events.Config) { c.DataSchema = "https://shop.example/async api.json" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := events.Config{Services: app.Services(), Outbox: &fakeOutbox{}}
			tc.mod(&cfg)
			if _, err := events.New(cfg); err == nil {
				t.Errorf("events.New accepted %+q / %+q", cfg.Source, cfg.DataSchema)
			}
		})
	}
	cfg := events.Config{Services: app.Services(), Outbox: &fakeOutbox{}, Source: "urn:uuid:6f1d7c58-2d0b-4c59-9a52-0b7c1e3f4a10", DataSchema: "http://gw:8080/asyncapi.json"}
	if _, err := events.New(cfg); err != nil {
		t.Errorf("events.New refused a URN source and an http data schema: %v", err)
	}
}

// compactJSON removes the random spaces protojson puts in its output.
func compactJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return string(b)
	}
	return out.String()
}

// TestRefusals checks what emits nothing: a full or closed outbox refuses
// the mutation with UNAVAILABLE before the handler runs; a failed mutation
// passes its error through; a read is never refused.
func TestRefusals(t *testing.T) {
	t.Parallel()
	notFound := status.Error(codes.NotFound, "no product 7")
	cases := []struct {
		name       string
		method     string
		admitErr   error
		handlerErr error
		wantCode   codes.Code
		wantCalls  int
	}{
		{"outbox full", setStockLevel, outbox.ErrFull, nil, codes.Unavailable, 0},
		{"outbox closed", setStockLevel, outbox.ErrClosed, nil, codes.Unavailable, 0},
		{"outbox failed", setStockLevel, outbox.ErrFailed, nil, codes.Unavailable, 0},
		{"mutation failed", setStockLevel, nil, notFound, codes.NotFound, 1},
		{"upstream down", setStockLevel, nil, status.Error(codes.Unavailable, "service down"), codes.Unavailable, 1},
		{"read with outbox full", getStock, outbox.ErrFull, nil, codes.OK, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ob := &fakeOutbox{admitErr: tc.admitErr}
			em := newEmitter(t, ob, nil)
			h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}, err: tc.handlerErr}
			_, err, _ := call(t, em, tc.method, setLevelReq(5), h, "idempotency-key", "k")
			if got, want := status.Code(err), tc.wantCode; got != want {
				t.Errorf("code: got %v, want %v (%v)", got, want, err)
			}
			if got, want := h.count(), tc.wantCalls; got != want {
				t.Errorf("handler calls: got %d, want %d", got, want)
			}
			if got, want := len(ob.records()), 0; got != want {
				t.Errorf("appended %d records, want %d", got, want)
			}
			if tc.handlerErr != nil && err != tc.handlerErr {
				t.Errorf("error: got %v, want the handler's %v unchanged", err, tc.handlerErr)
			}
		})
	}
}

// TestIdempotency checks the Idempotency-Key: a repeat is answered from the
// store with idempotency-replayed, without a second call or event; a
// different request under the same key is INVALID_ARGUMENT; failures are not
// stored; keys are per method.
// sentEmpty marks a step that sends the Idempotency-Key header with no
// value.
const sentEmpty = "(sent empty)"

func TestIdempotency(t *testing.T) {
	t.Parallel()
	type step struct {
		method       string
		key          string
		quantity     int32
		handlerErr   error
		wantCode     codes.Code
		wantReplayed bool
	}
	cases := []struct {
		name        string
		steps       []step
		wantCalls   int
		wantRecords int
	}{
		{"repeat is replayed", []step{
			{setStockLevel, "k1", 5, nil, codes.OK, false},
			{setStockLevel, "k1", 5, nil, codes.OK, true},
			{setStockLevel, "k1", 5, nil, codes.OK, true},
		}, 1, 1},
		{"different body", []step{
			{setStockLevel, "k1", 5, nil, codes.OK, false},
			{setStockLevel, "k1", 6, nil, codes.InvalidArgument, false},
		}, 1, 1},
		{"different keys", []step{
			{setStockLevel, "k1", 5, nil, codes.OK, false},
			{setStockLevel, "k2", 5, nil, codes.OK, false},
		}, 2, 2},
		{"key is per method", []step{
			{setStockLevel, "k1", 5, nil, codes.OK, false},
			{"/shop.stock.v1.StockService/UpdateStock", "k1", 5, nil, codes.OK, false},
		}, 2, 2},
		{"failure is not stored", []step{
			{setStockLevel, "k1", 5, status.Error(codes.Unavailable, "down"), codes.Unavailable, false},
			{setStockLevel, "k1", 5, nil, codes.OK, false},
			{setStockLevel, "k1", 5, nil, codes.OK, true},
		}, 2, 1},
		{"no key, no replay", []step{
			{setStockLevel, "", 5, nil, codes.OK, false},
			{setStockLevel, "", 5, nil, codes.OK, false},
		}, 2, 2},
		{"key too long", []step{
			{setStockLevel, strings.Repeat("k", events.MaxIdempotencyKeyLen+1), 5, nil, codes.InvalidArgument, false},
		}, 0, 0},
		{"key sent empty", []step{
			{setStockLevel, sentEmpty, 5, nil, codes.InvalidArgument, false},
		}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ob := &fakeOutbox{}
			em := newEmitter(t, ob, nil)
			calls := 0
			var first proto.Message
			for i, st := range tc.steps {
				h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: &stockv1.StockItem{ProductId: 7, Quantity: st.quantity + int32(i)*100}}, err: st.handlerErr}
				var md []string
				switch st.key {
				case "":
				case sentEmpty:
					md = []string{"idempotency-key", ""}
				default:
					md = []string{"idempotency-key", st.key}
				}
				resp, err, hs := call(t, em, st.method, setLevelReq(st.quantity), h, md...)
				calls += h.count()
				if got, want := status.Code(err), st.wantCode; got != want {
					t.Fatalf("step %d: code: got %v, want %v (%v)", i, got, want, err)
				}
				if got, want := hs.get("idempotency-replayed") == "true", st.wantReplayed; got != want {
					t.Errorf("step %d: replayed: got %v, want %v", i, got, want)
				}
				if err == nil && first == nil {
					first = resp.(proto.Message)
				}
				if st.wantReplayed && !proto.Equal(resp.(proto.Message), first) {
					t.Errorf("step %d: replayed %v, want the first response %v", i, resp, first)
				}
			}
			if got, want := calls, tc.wantCalls; got != want {
				t.Errorf("handler calls: got %d, want %d", got, want)
			}
			if got, want := len(ob.records()), tc.wantRecords; got != want {
				t.Errorf("records: got %d, want %d", got, want)
			}
		})
	}
}

// TestIdempotencyPerCaller: the same Idempotency-Key and request from
// another authenticated user is not answered from the first user's entry.
func TestIdempotencyPerCaller(t *testing.T) {
	t.Parallel()
	em := newEmitter(t, &fakeOutbox{}, nil)
	h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: &stockv1.StockItem{ProductId: 7, Quantity: 5}}}
	for i, user := range []int64{1, 2, 1} {
		hs := &headerStream{}
		ctx := grpc.NewContextWithServerTransportStream(context.Background(), hs)
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("idempotency-key", "shared"))
		ctx = reqinfo.WithCaller(ctx, &reqinfo.Caller{UserID: user})
		if _, err := em.Interceptor()(ctx, setLevelReq(5), &grpc.UnaryServerInfo{FullMethod: setStockLevel}, h.handle); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got, want := hs.get("idempotency-replayed") == "true", i == 2; got != want {
			t.Errorf("call %d by user %d: replayed %v, want %v", i, user, got, want)
		}
	}
	if got, want := h.count(), 2; got != want {
		t.Errorf("handler calls: got %d, want %d (one per user)", got, want)
	}
}

// TestIdempotencyInFlight: a duplicate that arrives while the first is being
// served is refused with ABORTED (HTTP 409) rather than run twice.
func TestIdempotencyInFlight(t *testing.T) {
	t.Parallel()
	ob := &fakeOutbox{}
	em := newEmitter(t, ob, nil)
	block := make(chan struct{})
	h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}, block: block}
	done := make(chan error)
	go func() {
		_, err, _ := call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1")
		done <- err
	}()
	for h.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	h2 := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}}
	_, err, _ := call(t, em, setStockLevel, setLevelReq(5), h2, "idempotency-key", "k1")
	if got, want := status.Code(err), codes.Aborted; got != want {
		t.Errorf("duplicate in flight: got %v, want %v", got, want)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatalf("first call: %v", err)
	}
	if got, want := h2.count(), 0; got != want {
		t.Errorf("duplicate reached the handler %d times, want %d", got, want)
	}
	if got, want := len(ob.records()), 1; got != want {
		t.Errorf("records: got %d, want %d", got, want)
	}
}

// TestEventIDDeterministic: with an Idempotency-Key the ce_id is a UUIDv5 of
// method, key and request, so a retry after a restart (a new Emitter, an
// empty store) emits the same id, and a different request does not.
func TestEventIDDeterministic(t *testing.T) {
	t.Parallel()
	id := func(key string, q int32) string {
		ob := &fakeOutbox{}
		em := newEmitter(t, ob, nil)
		h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}}
		if _, err, _ := call(t, em, setStockLevel, setLevelReq(q), h, "idempotency-key", key); err != nil {
			t.Fatalf("call: %v", err)
		}
		return headers(ob.records()[0])["ce_id"]
	}
	a, b := id("k1", 5), id("k1", 5)
	if a != b {
		t.Errorf("same key and request after a restart: ce_id %s then %s, want equal", a, b)
	}
	if u, err := uuid.Parse(a); err != nil || u.Version() != 5 {
		t.Errorf("ce_id %s: want a UUIDv5 (%v)", a, err)
	}
	if c := id("k2", 5); c == a {
		t.Errorf("another key gave the same ce_id %s", c)
	}
	if d := id("k1", 6); d == a {
		t.Errorf("another request under the same key gave the same ce_id %s", d)
	}
}

// TestAppendFailure: when the mutation succeeded but its event could not be
// appended, the client gets UNAVAILABLE; a retry with the same key appends
// the stored event (same ce_id) and answers with the stored response,
// without calling the service again.
func TestAppendFailure(t *testing.T) {
	t.Parallel()
	ob := &fakeOutbox{appendErr: errors.New("disk on fire")}
	em := newEmitter(t, ob, nil)
	h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}}
	_, err, _ := call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1")
	if got, want := status.Code(err), codes.Unavailable; got != want {
		t.Fatalf("append failed: got %v, want %v", got, want)
	}
	if got, want := len(ob.records()), 0; got != want {
		t.Fatalf("records: got %d, want %d", got, want)
	}
	_, err, _ = call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1")
	if got, want := status.Code(err), codes.Unavailable; got != want {
		t.Fatalf("retry while the outbox still fails: got %v, want %v", got, want)
	}
	ob.set(nil, nil)
	resp, err, hs := call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1")
	if err != nil {
		t.Fatalf("retry after recovery: %v", err)
	}
	if got, want := h.count(), 1; got != want {
		t.Errorf("handler calls: got %d, want %d", got, want)
	}
	if got, want := hs.get("idempotency-replayed"), "true"; got != want {
		t.Errorf("replayed header: got %q, want %q", got, want)
	}
	if !proto.Equal(resp.(proto.Message), &stockv1.SetStockLevelResponse{Item: tea}) {
		t.Errorf("response: got %v", resp)
	}
	if got, want := len(ob.records()), 1; got != want {
		t.Fatalf("records: got %d, want %d", got, want)
	}
	// Once appended, a further retry emits nothing more.
	if _, err, _ := call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1"); err != nil {
		t.Fatalf("second retry: %v", err)
	}
	if got, want := len(ob.records()), 1; got != want {
		t.Errorf("records after a second retry: got %d, want %d", got, want)
	}
}

// TestIdempotencyWindow: past the window the key is forgotten and the
// request runs again.
func TestIdempotencyWindow(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(testTime.UnixNano())
	ob := &fakeOutbox{}
	em := newEmitter(t, ob, func(c *events.Config) {
		c.IdempotencyWindow = time.Hour
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}}
	cases := []struct {
		name      string
		advance   time.Duration
		wantCalls int
	}{
		{"first", 0, 1},
		{"within the window", 59 * time.Minute, 1},
		{"past the window", 2 * time.Minute, 2},
	}
	for _, tc := range cases {
		now.Add(int64(tc.advance))
		if _, err, _ := call(t, em, setStockLevel, setLevelReq(5), h, "idempotency-key", "k1"); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, want := h.count(), tc.wantCalls; got != want {
			t.Errorf("%s: handler calls: got %d, want %d", tc.name, got, want)
		}
	}
}

// TestConcurrentKeys runs many keyed and unkeyed mutations at once (for the
// race detector) and checks one event per distinct request.
func TestConcurrentKeys(t *testing.T) {
	t.Parallel()
	ob := &fakeOutbox{}
	em := newEmitter(t, ob, nil)
	h := &fakeHandler{resp: &stockv1.SetStockLevelResponse{Item: tea}}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			key := []string{"idempotency-key", "k" + string(rune('a'+i%10))}
			for {
				_, err, _ := call(t, em, setStockLevel, setLevelReq(5), h, key...)
				if status.Code(err) != codes.Aborted {
					if err != nil {
						t.Errorf("call: %v", err)
					}
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	if got, want := len(ob.records()), 10; got != want {
		t.Errorf("records: got %d, want %d (one per key)", got, want)
	}
	if got, want := em.Stats().IdempotencyEntries, 10; got != want {
		t.Errorf("stored keys: got %d, want %d", got, want)
	}
}

// TestSplit: ProcessOrderStock declares split "items": one StockProcessed
// per product, keyed by it, with ids of their own that a retry under the
// same Idempotency-Key repeats; when an append fails part-way, the retry
// appends the rest only.
func TestSplit(t *testing.T) {
	t.Parallel()
	const processStock = "/shop.order.v1.OrderService/ProcessOrderStock"
	blackTea := &stockv1.StockItem{ProductId: 8, ProductName: "black tea", Quantity: 2}
	greenTea := &stockv1.StockItem{ProductId: 9, ProductName: "green tea", Quantity: 4}
	items := []*stockv1.StockItem{tea, blackTea, greenTea}
	req := &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: 7, Quantity: 1}, {ProductId: 8, Quantity: 1}, {ProductId: 9, Quantity: 1}}}
	run := func(ob *fakeOutbox, em *events.Emitter, h *fakeHandler) error {
		_, err, _ := call(t, em, processStock, req, h, "idempotency-key", "split-1", "x-request-id", "req-1")
		return err
	}
	ids := func(recs []outbox.Record) []string {
		var out []string
		for _, r := range recs {
			out = append(out, headers(r)["ce_id"])
		}
		return out
	}

	ob := &fakeOutbox{}
	h := &fakeHandler{resp: &orderv1.ProcessOrderStockResponse{Items: items}}
	if err := run(ob, newEmitter(t, ob, nil), h); err != nil {
		t.Fatalf("call: %v", err)
	}
	recs := ob.records()
	if got, want := len(recs), len(items); got != want {
		t.Fatalf("appended %d records, want one per product (%d)", got, want)
	}
	seen := map[string]bool{}
	for i, rec := range recs {
		if got, want := string(rec.Key), fmt.Sprint(items[i].GetProductId()); got != want {
			t.Errorf("event %d: key %q, want %q", i, got, want)
		}
		got := &eventsv1.StockProcessed{}
		if err := protojson.Unmarshal(rec.Value, got); err != nil {
			t.Fatalf("event %d payload %s: %v", i, rec.Value, err)
		}
		if want := (&eventsv1.StockProcessed{Items: items[i : i+1]}); !proto.Equal(got, want) {
			t.Errorf("event %d payload: got %v, want %v", i, got, want)
		}
		hs := headers(rec)
		if hs["x-request-id"] != "req-1" || hs["ce_type"] != "shop.events.v1.StockProcessed" {
			t.Errorf("event %d headers: %v", i, hs)
		}
		if seen[hs["ce_id"]] {
			t.Errorf("event %d: ce_id %s repeated within the call", i, hs["ce_id"])
		}
		seen[hs["ce_id"]] = true
	}
	if got := h.resp.(*orderv1.ProcessOrderStockResponse).GetItems(); len(got) != len(items) {
		t.Errorf("the response lost items to the split: %v", got)
	}

	// The same call after a restart (a new emitter): the same ids.
	again := &fakeOutbox{}
	if err := run(again, newEmitter(t, again, nil), h); err != nil {
		t.Fatalf("call after a restart: %v", err)
	}
	if got, want := ids(again.records()), ids(recs); !slices.Equal(got, want) {
		t.Errorf("ce_ids after a restart %v, want %v", got, want)
	}

	// The second append fails: UNAVAILABLE; the retry appends the other two.
	part := &fakeOutbox{appendErr: errors.New("disk on fire"), failAt: 1}
	em := newEmitter(t, part, nil)
	if err := run(part, em, h); status.Code(err) != codes.Unavailable {
		t.Fatalf("append failed part-way: got %v, want UNAVAILABLE", err)
	}
	part.set(nil, nil)
	if err := run(part, em, h); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got, want := ids(part.records()), ids(recs); !slices.Equal(got, want) {
		t.Errorf("after a part-way failure and a retry: ce_ids %v, want %v", got, want)
	}
}
