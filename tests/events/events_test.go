// Package events_test runs the gateway's Kafka events end to end: the real
// gateway binary, the real Python services and the real broker, started by
// tests/harness. The broker must be running (scripts/kafka.sh start; make
// test does) and the venv created (make venv): without either the tests
// fail, never skip. The fault tests stop and start the shared broker, so no
// other Kafka test may run at the same time; the tests of this package run
// one after the other.
//
// Each test prints its counts on stdout (go test -v shows them).
package events_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	_ "github.com/shopgateway/shop/gen/shop/events/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/tests/harness"
)

// call is one mutation, sent over REST or gRPC.
type call struct {
	name string
	rpc  string        // full gRPC method
	req  proto.Message // gRPC request
	// REST form of the same request.
	httpMethod, path, body string
	// respField is the response field the REST body holds ("" for all).
	respField string
	resp      proto.Message // empty response, decoded into
	// For a failure: the HTTP status and gRPC code it must get.
	wantHTTP int
	wantCode codes.Code
	// For a success: the event it must produce.
	wantType, wantTopic string
	key, subject        func(resp proto.Message) string // "" subject: no header
	idempotencyKey      string
	// split names the repeated response field whose elements get an event
	// each (keyed by key of a payload holding that element alone).
	split string
}

// result is what a call produced.
type result struct {
	call      call
	requestID string
	resp      proto.Message // decoded response of a success
	replayed  bool
}

type transport interface {
	do(tb testing.TB, c call, requestID string) (ok bool, res result)
}

type restTransport struct{ s *harness.Stack }

func (r restTransport) do(tb testing.TB, c call, requestID string) (bool, result) {
	tb.Helper()
	hdr := []string{"X-Request-Id", requestID, "Traceparent", traceparentOf(requestID)}
	if c.idempotencyKey != "" {
		hdr = append(hdr, "Idempotency-Key", c.idempotencyKey)
	}
	st, h, raw := r.s.DoRaw(tb, c.httpMethod, c.path, c.body, hdr...)
	res := result{call: c, requestID: requestID, replayed: h.Get("Idempotency-Replayed") == "true"}
	if c.wantHTTP != 0 {
		if st != c.wantHTTP {
			tb.Errorf("%s: REST %s %s: status %d %s, want %d", c.name, c.httpMethod, c.path, st, raw, c.wantHTTP)
		}
		return false, res
	}
	if st != http.StatusOK {
		tb.Fatalf("%s: REST %s %s %s: status %d %s", c.name, c.httpMethod, c.path, c.body, st, raw)
	}
	resp := c.resp.ProtoReflect().New()
	target := resp
	if c.respField != "" {
		target = resp.Mutable(resp.Descriptor().Fields().ByName(protoreflect.Name(c.respField))).Message()
	}
	if err := protojson.Unmarshal(raw, target.Interface()); err != nil {
		tb.Fatalf("%s: REST body %s: %v", c.name, raw, err)
	}
	res.resp = resp.Interface()
	return true, res
}

type grpcTransport struct{ conn *grpc.ClientConn }

func (g grpcTransport) do(tb testing.TB, c call, requestID string) (bool, result) {
	tb.Helper()
	md := []string{"x-request-id", requestID, "traceparent", traceparentOf(requestID)}
	if c.idempotencyKey != "" {
		md = append(md, "idempotency-key", c.idempotencyKey)
	}
	var header metadata.MD
	resp := c.resp.ProtoReflect().New().Interface()
	err := g.conn.Invoke(grpcCtx(tb, md...), c.rpc, c.req, resp, grpc.Header(&header))
	res := result{call: c, requestID: requestID, replayed: len(header.Get("idempotency-replayed")) > 0}
	if c.wantHTTP != 0 {
		if got := status.Code(err); got != c.wantCode {
			tb.Errorf("%s: gRPC %s: %v, want %v", c.name, c.rpc, err, c.wantCode)
		}
		return false, res
	}
	if err != nil {
		tb.Fatalf("%s: gRPC %s %v: %v", c.name, c.rpc, c.req, err)
	}
	res.resp = resp
	return true, res
}

// traceparentOf makes a valid W3C traceparent whose trace id is derived
// from the request id, to check that it reaches the event unchanged.
func traceparentOf(requestID string) string {
	u := uuid.NewSHA1(uuid.NameSpaceOID, []byte(requestID))
	return fmt.Sprintf("00-%x-%x-01", u[:], u[:8])
}

func productKey(resp proto.Message) string {
	return fieldString(resp, "item.product_id", "items.product_id")
}

func userKey(resp proto.Message) string { return fieldString(resp, "item.user_id", "order.user_id") }

// fieldString reads the first of the dotted paths that resolves in m (a
// repeated field yields its first element) and formats it in decimal.
func fieldString(m proto.Message, paths ...string) string {
	for _, p := range paths {
		cur := m.ProtoReflect()
		parts := strings.Split(p, ".")
	next:
		for i, name := range parts {
			fd := cur.Descriptor().Fields().ByName(protoreflect.Name(name))
			switch {
			case fd == nil:
				break next
			case i == len(parts)-1:
				return fmt.Sprint(cur.Get(fd).Interface())
			case fd.IsList():
				l := cur.Get(fd).List()
				if l.Len() == 0 {
					break next
				}
				cur = l.Get(0).Message()
			default:
				cur = cur.Get(fd).Message()
			}
		}
	}
	return ""
}

// TestDeclaredEvents sends every mutation of the API over REST and over
// gRPC and reads the events back from Kafka: each success produces exactly
// its declared event (topic, key, CloudEvents headers, payload equal to the
// response), each failed mutation produces none, and a repeat with an
// Idempotency-Key is replayed without a second event.
func TestDeclaredEvents(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	reader := harness.NewEventReader(t, harness.TopicStock, harness.TopicCart, harness.TopicOrder)
	transports := []struct {
		name string
		tr   transport
	}{
		{"rest", restTransport{s}},
		{"grpc", grpcTransport{s.GRPCConn(t)}},
	}
	for i, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			base := productBase() + int64(i)*10
			prefix := fmt.Sprintf("decl-%s-%s", runID, tc.name)
			var successes, failures []result
			n := 0
			send := func(c call) result {
				t.Helper()
				n++
				ok, res := tc.tr.do(t, c, fmt.Sprintf("%s-%d", prefix, n))
				if ok {
					successes = append(successes, res)
				} else {
					failures = append(failures, res)
				}
				return res
			}
			for _, c := range mutations(t, s, base, send) {
				send(c)
			}
			want := 0
			for _, r := range successes {
				if !r.replayed {
					want += eventCount(r)
				}
			}
			evs := reader.WaitMatching(t, want, 60*time.Second, func(e harness.Event) bool {
				return strings.HasPrefix(e.Headers["x-request-id"], prefix+"-")
			})
			// Failures were sent before the last success, and the relay
			// publishes in outbox order per partition; a short wait still
			// catches a straggler on another partition.
			time.Sleep(time.Second)
			evs = harness.Filter(reader.Events(), func(e harness.Event) bool {
				return strings.HasPrefix(e.Headers["x-request-id"], prefix+"-")
			})
			byReq := map[string][]harness.Event{}
			for _, e := range evs {
				byReq[e.Headers["x-request-id"]] = append(byReq[e.Headers["x-request-id"]], e)
			}
			replays := 0
			for _, r := range successes {
				if r.replayed {
					replays++
					if got := len(byReq[r.requestID]); got != 0 {
						t.Errorf("%s: replayed response produced %d events, want 0", r.call.name, got)
					}
					continue
				}
				t.Run(r.call.name, func(t *testing.T) { checkEvent(t, r, byReq[r.requestID]) })
			}
			for _, r := range failures {
				if got := len(byReq[r.requestID]); got != 0 {
					t.Errorf("failed %s produced %d events, want 0: %v", r.call.name, got, byReq[r.requestID])
				}
			}
			fmt.Printf("declared events over %s: %d successful mutations -> %d events (%d replays -> 0), %d failed mutations -> %d events\n",
				tc.name, len(successes)-replays, len(evs), replays, len(failures), countFor(byReq, failures))
		})
	}
}

func countFor(byReq map[string][]harness.Event, rs []result) int {
	n := 0
	for _, r := range rs {
		n += len(byReq[r.requestID])
	}
	return n
}

// checkEvent checks that a success has exactly its declared events: one,
// or for a split call one per element of the split field.
func checkEvent(t *testing.T, r result, evs []harness.Event) {
	t.Helper()
	c := r.call
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(c.wantType))
	if err != nil {
		t.Fatalf("payload type %s: %v", c.wantType, err)
	}
	// The payload the whole response makes, then one per split element.
	whole := mt.New()
	resp := r.resp.ProtoReflect()
	for i := 0; i < whole.Descriptor().Fields().Len(); i++ {
		fd := whole.Descriptor().Fields().Get(i)
		whole.Set(fd, resp.Get(resp.Descriptor().Fields().ByName(fd.Name())))
	}
	wants := []proto.Message{whole.Interface()}
	if c.split != "" {
		fd := whole.Descriptor().Fields().ByName(protoreflect.Name(c.split))
		wants = nil
		for i, all := 0, whole.Get(fd).List(); i < all.Len(); i++ {
			one := mt.New()
			one.Mutable(fd).List().Append(all.Get(i))
			wants = append(wants, one.Interface())
		}
	}
	if got, want := len(evs), len(wants); got != want {
		t.Fatalf("%d events for request %s, want %d: %v", got, r.requestID, want, evs)
	}
	for i, want := range wants {
		key := c.key(want)
		j := slices.IndexFunc(evs, func(e harness.Event) bool { return e.Key == key })
		if j < 0 {
			t.Errorf("event %d: none keyed %q among %v", i, key, evs)
			continue
		}
		checkOneEvent(t, r, evs[j], want)
	}
}

// eventCount is how many events a success must produce.
func eventCount(r result) int {
	if r.call.split == "" {
		return 1
	}
	m := r.resp.ProtoReflect()
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(r.call.split))).List().Len()
}

// checkOneEvent checks an event's topic, headers and payload.
func checkOneEvent(t *testing.T, r result, e harness.Event, want proto.Message) {
	t.Helper()
	c := r.call
	if got, want := e.Topic, c.wantTopic; got != want {
		t.Errorf("topic: got %q, want %q", got, want)
	}
	wantHeaders := map[string]string{
		"ce_specversion": "1.0",
		"ce_type":        c.wantType,
		"content-type":   "application/json",
		"ce_traceparent": traceparentOf(r.requestID),
		"x-request-id":   r.requestID,
	}
	if c.subject != nil {
		wantHeaders["ce_subject"] = c.subject(r.resp)
	}
	for k, want := range wantHeaders {
		if got := e.Headers[k]; got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	// The deployment's source: the default prefix and the id made once for
	// the outbox (the e2e suite checks it against the file).
	if src, ok := strings.CutPrefix(e.Headers["ce_source"], "/shop-gateway/"); !ok || uuid.Validate(src) != nil {
		t.Errorf("header ce_source: got %q, want /shop-gateway/<uuid>", e.Headers["ce_source"])
	}
	if ds := e.Headers["ce_dataschema"]; !strings.HasSuffix(ds, "/asyncapi.json#/components/schemas/"+c.wantType) {
		t.Errorf("header ce_dataschema: got %q, want <gateway>/asyncapi.json#/components/schemas/%s", ds, c.wantType)
	}
	if _, ok := e.Headers["ce_subject"]; ok && c.subject == nil {
		t.Errorf("ce_subject %q on an event that declares none", e.Headers["ce_subject"])
	}
	if _, err := uuid.Parse(e.Headers["ce_id"]); err != nil {
		t.Errorf("ce_id %q is not a UUID: %v", e.Headers["ce_id"], err)
	}
	if ts, err := time.Parse(time.RFC3339Nano, e.Headers["ce_time"]); err != nil || time.Since(ts) > 5*time.Minute || time.Until(ts) > time.Minute {
		t.Errorf("ce_time %q: not a recent RFC 3339 time (%v)", e.Headers["ce_time"], err)
	}
	got := want.ProtoReflect().New().Interface()
	if err := protojson.Unmarshal(e.Value, got); err != nil {
		t.Fatalf("payload %s: %v", e.Value, err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("payload:\n got %v\nwant %v", got, want)
	}
}

// mutations returns the calls of the test in order: every mutating RPC once
// at least, the failures each can have, and an idempotent repeat. Cart and
// order calls that service B serves wait for B to have replicated A's
// cart; send is used for the calls whose results later calls need.
func mutations(t *testing.T, s *harness.Stack, base int64, send func(call) result) []call {
	t.Helper()
	p1, p2, user := base+1, base+2, base+3
	stock := func(name, rpc, method, path, body string, req, resp proto.Message, ceType string) call {
		return call{name: name, rpc: rpc, req: req, httpMethod: method, path: path, body: body, respField: "item", resp: resp,
			wantType: ceType, wantTopic: harness.TopicStock, key: productKey, subject: productKey}
	}
	item := func(id int64, name string, q int32, price int64) *stockv1.StockItem {
		return &stockv1.StockItem{ProductId: id, ProductName: name, Quantity: q, PriceCents: price}
	}
	itemJSON := func(id int64, name string, q int32, price int64) string {
		return fmt.Sprintf(`{"product_id":%d,"product_name":%q,"quantity":%d,"price_cents":%d}`, id, name, q, price)
	}
	fail := func(name, rpc, method, path, body string, req, resp proto.Message, httpStatus int, code codes.Code) call {
		return call{name: name, rpc: rpc, req: req, httpMethod: method, path: path, body: body, resp: resp, wantHTTP: httpStatus, wantCode: code}
	}
	const (
		createStock  = "/shop.stock.v1.StockService/CreateStock"
		updateStock  = "/shop.stock.v1.StockService/UpdateStock"
		deleteStock  = "/shop.stock.v1.StockService/DeleteStock"
		setLevel     = "/shop.stock.v1.StockService/SetStockLevel"
		addItem      = "/shop.cart.v1.CartService/AddCartItem"
		removeItem   = "/shop.cart.v1.CartService/RemoveCartItem"
		payOrder     = "/shop.order.v1.OrderService/PayOrder"
		processStock = "/shop.order.v1.OrderService/ProcessOrderStock"
	)
	cartCall := func(name, rpc, method, path, body string, req, resp proto.Message, ceType string) call {
		return call{name: name, rpc: rpc, req: req, httpMethod: method, path: path, body: body, respField: "item", resp: resp,
			wantType: ceType, wantTopic: harness.TopicCart, key: userKey,
			subject: func(m proto.Message) string { return fieldString(m, "item.item_id") }}
	}
	addCall := func(name string, q int32) call {
		return cartCall(name, addItem, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":%d}`, user, p1, q),
			&cartv1.AddCartItemRequest{UserId: user, ProductId: p1, Quantity: q}, &cartv1.AddCartItemResponse{}, "shop.events.v1.CartItemAdded")
	}

	// Stock first: these do not depend on each other.
	for _, c := range []call{
		stock("CreateStock", createStock, "POST", "/stock", itemJSON(p1, "green tea", 10, 250),
			&stockv1.CreateStockRequest{Item: item(p1, "green tea", 10, 250)}, &stockv1.CreateStockResponse{}, "shop.events.v1.StockCreated"),
		stock("CreateStock second product", createStock, "POST", "/stock", itemJSON(p2, "black tea", 5, 300),
			&stockv1.CreateStockRequest{Item: item(p2, "black tea", 5, 300)}, &stockv1.CreateStockResponse{}, "shop.events.v1.StockCreated"),
		fail("CreateStock duplicate", createStock, "POST", "/stock", itemJSON(p1, "again", 1, 1),
			&stockv1.CreateStockRequest{Item: item(p1, "again", 1, 1)}, &stockv1.CreateStockResponse{}, http.StatusConflict, codes.AlreadyExists),
		stock("UpdateStock", updateStock, "PUT", fmt.Sprintf("/stock/%d", p1), itemJSON(p1, "green tea, loose", 20, 275),
			&stockv1.UpdateStockRequest{ProductId: p1, Item: item(p1, "green tea, loose", 20, 275)}, &stockv1.UpdateStockResponse{}, "shop.events.v1.StockUpdated"),
		stock("SetStockLevel", setLevel, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":30}`, p1),
			&stockv1.SetStockLevelRequest{ProductId: p1, Quantity: 30}, &stockv1.SetStockLevelResponse{}, "shop.events.v1.StockUpdated"),
		fail("SetStockLevel unknown product", setLevel, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, base+9),
			&stockv1.SetStockLevelRequest{ProductId: base + 9, Quantity: 1}, &stockv1.SetStockLevelResponse{}, http.StatusNotFound, codes.NotFound),
		fail("DeleteStock unknown product", deleteStock, "DELETE", fmt.Sprintf("/stock/%d", base+9), "",
			&stockv1.DeleteStockRequest{ProductId: base + 9}, &stockv1.DeleteStockResponse{}, http.StatusNotFound, codes.NotFound),
		fail("AddCartItem more than in stock", addItem, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1000}`, user, p1),
			&cartv1.AddCartItemRequest{UserId: user, ProductId: p1, Quantity: 1000}, &cartv1.AddCartItemResponse{}, http.StatusBadRequest, codes.FailedPrecondition),
		fail("PayOrder empty cart", payOrder, "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, base+8),
			&orderv1.PayOrderRequest{UserId: base + 8}, &orderv1.PayOrderResponse{}, http.StatusBadRequest, codes.FailedPrecondition),
		fail("ProcessOrderStock too much", processStock, "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1000}]}`, p1),
			&orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: p1, Quantity: 1000}}}, &orderv1.ProcessOrderStockResponse{}, http.StatusBadRequest, codes.FailedPrecondition),
		fail("RemoveCartItem unknown item", removeItem, "DELETE", fmt.Sprintf("/cart/%d", base+9), "",
			&cartv1.RemoveCartItemRequest{ItemId: base + 9}, &cartv1.RemoveCartItemResponse{}, http.StatusNotFound, codes.NotFound),
	} {
		send(c)
	}

	// An idempotent repeat: the second is replayed, with no event.
	keyed := stock("SetStockLevel with Idempotency-Key", setLevel, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":31}`, p1),
		&stockv1.SetStockLevelRequest{ProductId: p1, Quantity: 31}, &stockv1.SetStockLevelResponse{}, "shop.events.v1.StockUpdated")
	keyed.idempotencyKey = "idem-" + uuid.NewString()
	if first := send(keyed); first.replayed {
		t.Errorf("first call with a fresh Idempotency-Key was replayed")
	}
	keyed.name += " (repeat)"
	if again := send(keyed); !again.replayed {
		t.Errorf("repeat with the same Idempotency-Key was not replayed")
	}

	// The cart: added through A, removed through B once B has it.
	added := send(addCall("AddCartItem", 2))
	itemID := added.resp.(*cartv1.AddCartItemResponse).GetItem().GetItemId()
	waitCartInB(t, s, user, itemID)
	send(cartCall("RemoveCartItem", removeItem, "DELETE", fmt.Sprintf("/cart/%d", itemID), "",
		&cartv1.RemoveCartItemRequest{ItemId: itemID}, &cartv1.RemoveCartItemResponse{}, "shop.events.v1.CartItemRemoved"))

	// The order: pay for a cart B has replicated.
	added = send(addCall("AddCartItem for the order", 1))
	waitCartInB(t, s, user, added.resp.(*cartv1.AddCartItemResponse).GetItem().GetItemId())
	send(call{name: "PayOrder", rpc: payOrder, req: &orderv1.PayOrderRequest{UserId: user},
		httpMethod: "POST", path: "/order/pay", body: fmt.Sprintf(`{"user_id":%d}`, user), respField: "order", resp: &orderv1.PayOrderResponse{},
		wantType: "shop.events.v1.OrderPaid", wantTopic: harness.TopicOrder, key: userKey,
		subject: func(m proto.Message) string { return fieldString(m, "order.order_id") }})

	// Stock processing emits one event per product, keyed by it; no subject.
	return []call{
		{name: "ProcessOrderStock", rpc: processStock, split: "items",
			req:        &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: p1, Quantity: 1}, {ProductId: p2, Quantity: 1}}},
			httpMethod: "POST", path: "/order/process_stock", body: fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":1}]}`, p1, p2),
			resp: &orderv1.ProcessOrderStockResponse{}, wantType: "shop.events.v1.StockProcessed", wantTopic: harness.TopicStock, key: productKey},
		stock("DeleteStock", deleteStock, "DELETE", fmt.Sprintf("/stock/%d", p2), "",
			&stockv1.DeleteStockRequest{ProductId: p2}, &stockv1.DeleteStockResponse{}, "shop.events.v1.StockDeleted"),
	}
}

// waitCartInB waits until service B's replicated cart of user holds item.
func waitCartInB(tb testing.TB, s *harness.Stack, user, item int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := regexp.MustCompile(`"item_id":\s*` + strconv.FormatInt(item, 10) + `\b`)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/cart/%d", s.ServiceBURL(), user), nil)
		req.Header.Set(s.ServiceHeader("service_b", user, ""))
		resp, err := httpClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && want.Match(body) {
				return
			}
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("service B has not replicated cart item %d of user %d within 30s", item, user)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
