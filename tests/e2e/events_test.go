package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// eventTimeout bounds the wait for the gateway's events to reach Kafka.
const eventTimeout = 30 * time.Second

// expectation is the event one successful mutation must produce.
type expectation struct {
	what      string // the call, for messages
	requestID string // matches the event's x-request-id
	topic     string
	typ       string // ce_type
	key       string // record key
	subject   string // ce_subject, "" when none
	trace     string // the trace id the call sent, "" when none
	field     string // the payload field holding the resource
	// want is the resource as answered: a map, or for an RPC whose event is
	// split (ProcessOrderStock) the list of items, one event per item, keyed
	// by its product_id, each payload holding that item alone.
	want any
}

// count is how many events the call must produce.
func (e expectation) count() int {
	if items, ok := e.want.([]map[string]any); ok {
		return len(items)
	}
	return 1
}

// TestEvents performs every mutation over REST and over gRPC and reads its
// event back from Kafka: topic, ce_type, key, subject, a ce_id of its own,
// the request id (the response's X-Request-Id, or the one the caller sent),
// the trace id, the CloudEvents attributes, and a payload equal to the
// response. Failed mutations must emit nothing.
func TestEvents(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	r := harness.NewEventReader(t, harness.TopicStock, harness.TopicCart, harness.TopicOrder)
	start := time.Now()

	failPrefix := "fail-" + randHex(6) + "-"
	failed := failingMutations(t, s, failPrefix)

	var want []expectation
	want = append(want, eventsREST(t, s)...)
	want = append(want, eventsGRPC(t, s)...)

	byID := map[string]expectation{}
	for _, e := range want {
		byID[e.requestID] = e
	}
	// distinct returns, per request id of want, its events, one per ce_id.
	distinct := func(evs []harness.Event) map[string][]harness.Event {
		out := map[string][]harness.Event{}
		ids := map[string]bool{}
		for _, e := range evs {
			rid := e.Headers["x-request-id"]
			if _, ok := byID[rid]; !ok || ids[e.Headers["ce_id"]] {
				continue
			}
			ids[e.Headers["ce_id"]] = true
			out[rid] = append(out[rid], e)
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	// Missing events are reported per mutation below.
	_, _ = r.Collect(ctx, func(evs []harness.Event) bool {
		got := distinct(evs)
		for rid, exp := range byID {
			if len(got[rid]) < exp.count() {
				return false
			}
		}
		return true
	})
	// Give an event of a failed call, appended before every success, the
	// same chance to show up.
	time.Sleep(time.Second)
	all := r.Events()

	seen := distinct(all)        // request id -> its events
	ceIDs := map[string]string{} // ce_id -> request id
	for _, e := range harness.Filter(all, func(e harness.Event) bool { _, ok := byID[e.Headers["x-request-id"]]; return ok }) {
		rid := e.Headers["x-request-id"]
		if other, ok := ceIDs[e.Headers["ce_id"]]; ok && other != rid {
			t.Errorf("ce_id %s is shared by the events of %s and %s, want one per event", e.Headers["ce_id"], byID[other].what, byID[rid].what)
		}
		ceIDs[e.Headers["ce_id"]] = rid
	}
	for _, exp := range want {
		t.Run(exp.what, func(t *testing.T) {
			evs := seen[exp.requestID]
			if len(evs) != exp.count() {
				t.Fatalf("%d events with x-request-id %s, want %d %s on %s: %v", len(evs), exp.requestID, exp.count(), exp.typ, exp.topic, evs)
			}
			items, split := exp.want.([]map[string]any)
			if !split {
				checkEvent(t, evs[0], exp, start)
				return
			}
			// One event per item, keyed by its product.
			for _, item := range items {
				one := exp
				one.key, _ = item["product_id"].(string)
				one.want = []map[string]any{item}
				i := slices.IndexFunc(evs, func(e harness.Event) bool { return e.Key == one.key })
				if i < 0 {
					t.Errorf("no event keyed %s among %v", one.key, evs)
					continue
				}
				checkEvent(t, evs[i], one, start)
			}
		})
	}
	t.Run("failed mutations emit nothing", func(t *testing.T) {
		for _, e := range all {
			if rid := e.Headers["x-request-id"]; strings.HasPrefix(rid, failPrefix) {
				t.Errorf("failed call %s emitted %v, want no event", failed[rid], e)
			}
		}
	})
}

func checkEvent(t *testing.T, e harness.Event, exp expectation, start time.Time) {
	t.Helper()
	h := e.Headers
	for _, c := range []struct{ name, got, want string }{
		{"topic", e.Topic, exp.topic},
		{"ce_type", h["ce_type"], exp.typ},
		{"key", e.Key, exp.key},
		{"ce_specversion", h["ce_specversion"], "1.0"},
		{"content-type", h["content-type"], "application/json"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if exp.subject != "" {
		if got := h["ce_subject"]; got != exp.subject {
			t.Errorf("ce_subject = %q, want %q", got, exp.subject)
		}
	}
	if h["ce_id"] == "" {
		t.Errorf("ce_id is empty, want a unique id")
	}
	if h["ce_source"] == "" {
		t.Errorf("ce_source is empty, want the gateway's source")
	}
	if ts, err := time.Parse(time.RFC3339Nano, h["ce_time"]); err != nil {
		t.Errorf("ce_time = %q: %v, want RFC 3339", h["ce_time"], err)
	} else if ts.Before(start.Add(-time.Minute)) || ts.After(time.Now().Add(time.Minute)) {
		t.Errorf("ce_time = %v, want the time of the call (after %v)", ts, start)
	}
	if tp := h["ce_traceparent"]; tp == "" {
		t.Errorf("ce_traceparent is empty, want the request's trace context")
	} else if exp.trace != "" && !strings.Contains(tp, exp.trace) {
		t.Errorf("ce_traceparent = %q, want the trace id %s the caller sent", tp, exp.trace)
	}
	payload := decode(t, e)
	switch w := exp.want.(type) {
	case map[string]any:
		got, ok := payload[exp.field].(map[string]any)
		if !ok {
			t.Fatalf("payload %s = %#v, want an object", exp.field, payload[exp.field])
		}
		if d := subset(w, got); d != "" {
			t.Errorf("payload %s differs from the response: %s\n got %v\nwant %v", exp.field, d, got, w)
		}
	case []map[string]any:
		got := list(t, payload, exp.field)
		if len(got) != len(w) {
			t.Fatalf("payload %s has %d entries, want %d like the response", exp.field, len(got), len(w))
		}
		for i := range w {
			if d := subset(w[i], got[i]); d != "" {
				t.Errorf("payload %s[%d] differs from the response: %s", exp.field, i, d)
			}
		}
	}
}

// failingMutations sends mutations that fail, each with a request id that
// starts with prefix, and returns what each was.
func failingMutations(t *testing.T, s *harness.Stack, prefix string) map[string]string {
	p := createProduct(t, s, "fail-probe", 1, 1)
	unknown, user := newID(), newID()
	calls := map[string]string{}
	for i, c := range []struct{ method, path, body string }{
		{"POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"dup","quantity":1,"price_cents":1}`, p)},
		{"PUT", "/stock/" + str(unknown), `{"product_name":"x","quantity":1,"price_cents":1}`},
		{"POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":-1}`, p)},
		{"DELETE", "/stock/" + str(unknown), ""},
		{"POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, p)},
		{"DELETE", "/cart/" + str(unknown), ""},
		{"POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, user)},
		{"POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":2}]}`, p)},
	} {
		rid := fmt.Sprint(prefix, i)
		calls[rid] = c.method + " " + c.path + " " + c.body
		if got, _, body := s.Do(t, c.method, c.path, c.body, "X-Request-Id", rid); got < 400 {
			t.Fatalf("%s: status %d %v, want a failure", calls[rid], got, body)
		}
	}
	return calls
}

// eventsREST performs every mutation over REST and returns the events
// they must produce.
func eventsREST(t *testing.T, s *harness.Stack) []expectation {
	var out []expectation
	// call performs one mutation and records its expectation.
	call := func(what, method, path, body, topic, typ, key, subjectField, field string, headers ...string) map[string]any {
		t.Helper()
		h, m := do(t, s, http.StatusOK, method, path, body, headers...)
		rid := h.Get("X-Request-Id")
		if rid == "" {
			t.Fatalf("%s: no X-Request-Id in the response", what)
		}
		exp := expectation{what: "REST " + what, requestID: rid, topic: topic, typ: typ, key: key, field: field, want: m}
		if field == "items" {
			exp.want = list(t, m, "items")
		}
		if subjectField != "" {
			exp.subject, _ = m[subjectField].(string)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			if strings.EqualFold(headers[i], "traceparent") {
				exp.trace = strings.Split(headers[i+1], "-")[1]
			}
			if strings.EqualFold(headers[i], "X-Request-Id") && rid != headers[i+1] {
				t.Errorf("%s: response X-Request-Id = %q, want the one sent, %q", what, rid, headers[i+1])
			}
		}
		out = append(out, exp)
		return m
	}
	a, b := newID(), newID()
	user := newID()
	trace := randHex(16)
	call("CreateStock", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"ev-a","quantity":10,"price_cents":100}`, a),
		harness.TopicStock, "shop.events.v1.StockCreated", str(a), "product_id", "item",
		"traceparent", "00-"+trace+"-"+randHex(8)+"-01")
	call("CreateStock strings", "POST", "/stock", fmt.Sprintf(`{"product_id":"%d","product_name":"ev-b","quantity":"10","price_cents":"200"}`, b),
		harness.TopicStock, "shop.events.v1.StockCreated", str(b), "product_id", "item",
		"X-Request-Id", "rest-"+randHex(8))
	call("UpdateStock", "PUT", "/stock/"+str(a), `{"product_name":"ev-a2","quantity":9,"price_cents":110}`,
		harness.TopicStock, "shop.events.v1.StockUpdated", str(a), "product_id", "item")
	call("SetStockLevel", "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":8}`, a),
		harness.TopicStock, "shop.events.v1.StockUpdated", str(a), "product_id", "item")
	added := call("AddCartItem", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, b),
		harness.TopicCart, "shop.events.v1.CartItemAdded", str(user), "item_id", "item")
	waitCart(t, s, user, 1)
	call("RemoveCartItem", "DELETE", "/cart/"+added["item_id"].(string), "",
		harness.TopicCart, "shop.events.v1.CartItemRemoved", str(user), "item_id", "item")
	call("AddCartItem again", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, a),
		harness.TopicCart, "shop.events.v1.CartItemAdded", str(user), "item_id", "item")
	waitCart(t, s, user, 1)
	call("PayOrder", "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, user),
		harness.TopicOrder, "shop.events.v1.OrderPaid", str(user), "order_id", "order")
	call("ProcessOrderStock", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":1}]}`, a, b),
		harness.TopicStock, "shop.events.v1.StockProcessed", "", "", "items")
	call("DeleteStock", "DELETE", "/stock/"+str(b), "",
		harness.TopicStock, "shop.events.v1.StockDeleted", str(b), "product_id", "item")
	return out
}

// waitCart waits until B's cart of user has n items.
func waitCart(t *testing.T, s *harness.Stack, user int64, n int) {
	t.Helper()
	eventually(t, syncTimeout, func() string {
		if items, _ := restCart(t, s, "/cart/"+str(user)); len(items) != n {
			return fmt.Sprintf("B's cart of %d = %v, want %d items", user, items, n)
		}
		return ""
	})
}

// eventsGRPC performs every mutation over gRPC, each with its own
// x-request-id and traceparent, and returns the events they must produce.
func eventsGRPC(t *testing.T, s *harness.Stack) []expectation {
	c := newClients(t, s)
	var out []expectation
	// ctx returns a call context with a fresh request id and trace, and
	// records the expectation, filled in by done once the call returned.
	type pending struct {
		exp *expectation
		hdr *metadata.MD
	}
	var calls []pending
	call := func(what, topic, typ string) (context.Context, grpc.CallOption, *expectation) {
		rid, trace := "grpc-"+randHex(8), randHex(16)
		ctx := metadata.AppendToOutgoingContext(rpcCtx(t),
			"x-request-id", rid, "traceparent", "00-"+trace+"-"+randHex(8)+"-01")
		exp := &expectation{what: "gRPC " + what, requestID: rid, topic: topic, typ: typ, trace: trace}
		hdr := new(metadata.MD)
		calls = append(calls, pending{exp, hdr})
		return ctx, grpc.Header(hdr), exp
	}
	asMap := func(m proto.Message) map[string]any {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			t.Fatalf("protojson: %v", err)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("json: %v", err)
		}
		return out
	}

	a, b, user := newID(), newID(), newID()
	for _, id := range []int64{a, b} {
		ctx, h, exp := call("CreateStock", harness.TopicStock, "shop.events.v1.StockCreated")
		item := ok(c.stock.CreateStock(ctx, &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: id, ProductName: "gev", Quantity: 10, PriceCents: 300}}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(id), str(id), "item", asMap(item)
	}
	{
		ctx, h, exp := call("UpdateStock", harness.TopicStock, "shop.events.v1.StockUpdated")
		item := ok(c.stock.UpdateStock(ctx, &stockv1.UpdateStockRequest{ProductId: a, Item: &stockv1.StockItem{ProductName: "gev2", Quantity: 9, PriceCents: 310}}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(a), str(a), "item", asMap(item)
	}
	{
		ctx, h, exp := call("SetStockLevel", harness.TopicStock, "shop.events.v1.StockUpdated")
		item := ok(c.stock.SetStockLevel(ctx, &stockv1.SetStockLevelRequest{ProductId: a, Quantity: 8}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(a), str(a), "item", asMap(item)
	}
	var removable int64
	{
		ctx, h, exp := call("AddCartItem", harness.TopicCart, "shop.events.v1.CartItemAdded")
		item := ok(c.cart.AddCartItem(ctx, &cartv1.AddCartItemRequest{UserId: user, ProductId: b, Quantity: 1}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(user), str(item.GetItemId()), "item", asMap(item)
		removable = item.GetItemId()
	}
	waitCart(t, s, user, 1)
	{
		ctx, h, exp := call("RemoveCartItem", harness.TopicCart, "shop.events.v1.CartItemRemoved")
		item := ok(c.cart.RemoveCartItem(ctx, &cartv1.RemoveCartItemRequest{ItemId: removable}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(user), str(removable), "item", asMap(item)
	}
	{
		ctx, h, exp := call("AddCartItem again", harness.TopicCart, "shop.events.v1.CartItemAdded")
		item := ok(c.cart.AddCartItem(ctx, &cartv1.AddCartItemRequest{UserId: user, ProductId: a, Quantity: 2}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(user), str(item.GetItemId()), "item", asMap(item)
	}
	waitCart(t, s, user, 1)
	{
		ctx, h, exp := call("PayOrder", harness.TopicOrder, "shop.events.v1.OrderPaid")
		order := ok(c.order.PayOrder(ctx, &orderv1.PayOrderRequest{UserId: user}, h))(t, exp.what).GetOrder()
		exp.key, exp.subject, exp.field, exp.want = str(user), str(order.GetOrderId()), "order", asMap(order)
	}
	{
		ctx, h, exp := call("ProcessOrderStock", harness.TopicStock, "shop.events.v1.StockProcessed")
		resp := ok(c.order.ProcessOrderStock(ctx, &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: a, Quantity: 1}, {ProductId: b, Quantity: 1}}}, h))(t, exp.what)
		var items []map[string]any
		for _, it := range resp.GetItems() {
			items = append(items, asMap(it))
		}
		exp.field, exp.want = "items", items
	}
	{
		ctx, h, exp := call("DeleteStock", harness.TopicStock, "shop.events.v1.StockDeleted")
		item := ok(c.stock.DeleteStock(ctx, &stockv1.DeleteStockRequest{ProductId: b}, h))(t, exp.what).GetItem()
		exp.key, exp.subject, exp.field, exp.want = str(b), str(b), "item", asMap(item)
	}

	for _, p := range calls {
		if got := p.hdr.Get("x-request-id"); len(got) != 1 || got[0] != p.exp.requestID {
			t.Errorf("%s: response x-request-id = %q, want the one sent, %q", p.exp.what, got, p.exp.requestID)
		}
		out = append(out, *p.exp)
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
