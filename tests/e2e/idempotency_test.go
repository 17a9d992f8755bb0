package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestIdempotencyKeyAcrossGatewayRestart sends mutations with an
// Idempotency-Key, kills the gateway (its own store of answers is in
// memory), starts it again and repeats them: the services answer from the
// keys kept in their databases, so each change is made once, the answer is
// the first one (marked replayed), and the repeat's event has the first
// event's ce_id, so consumers that dedupe on ce_id see one event.
func TestIdempotencyKeyAcrossGatewayRestart(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	r := harness.NewEventReader(t, harness.TopicCart, harness.TopicStock)
	product := createProduct(t, s, "idempotent tea", 10, 300)
	user := newID()
	cartKey, stockKey := fmt.Sprintf("cart-%d", user), fmt.Sprintf("stock-%d", user)
	addBody := fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, product)

	_, first := do(t, s, http.StatusOK, "POST", "/cart/add", addBody, "Idempotency-Key", cartKey, "X-Request-Id", cartKey+"-1")
	setLevel := &stockv1.SetStockLevelRequest{ProductId: product, Quantity: 7}
	firstLevel := ok(stockv1.NewStockServiceClient(s.GRPCConn(t)).SetStockLevel(
		metadata.AppendToOutgoingContext(rpcCtx(t), "idempotency-key", stockKey, "x-request-id", stockKey+"-1"), setLevel))(t, "SetStockLevel")

	s.KillGateway()
	s.StartGateway()

	h, again := do(t, s, http.StatusOK, "POST", "/cart/add", addBody, "Idempotency-Key", cartKey, "X-Request-Id", cartKey+"-2")
	if !reflect.DeepEqual(again, first) {
		t.Errorf("repeated AddCartItem answered %v, want the first answer %v", again, first)
	}
	if h.Get("Idempotency-Replayed") != "true" {
		t.Errorf("repeated AddCartItem: Idempotency-Replayed = %q, want true", h.Get("Idempotency-Replayed"))
	}
	// WaitForReady: the connection may still be backing off from the kill.
	var header metadata.MD
	againLevel := ok(stockv1.NewStockServiceClient(s.GRPCConn(t)).SetStockLevel(
		metadata.AppendToOutgoingContext(rpcCtx(t), "idempotency-key", stockKey, "x-request-id", stockKey+"-2"),
		setLevel, grpc.Header(&header), grpc.WaitForReady(true)))(t, "SetStockLevel again")
	if !proto.Equal(againLevel, firstLevel) {
		t.Errorf("repeated SetStockLevel answered %v, want %v", againLevel, firstLevel)
	}
	if got := header.Get("idempotency-replayed"); len(got) != 1 || got[0] != "true" {
		t.Errorf("repeated SetStockLevel: idempotency-replayed header %v, want [true]", got)
	}

	// One cart line, and the key used for another request is refused by the
	// service with nothing changed.
	items, _ := restCart(t, s, fmt.Sprintf("/cart/fallback/%d", user))
	if len(items) != 1 {
		t.Errorf("A's cart of user %d has %d lines after a repeated add, want 1: %v", user, len(items), items)
	}
	st, _, body := s.Do(t, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":3}`, user, product), "Idempotency-Key", cartKey)
	wantStatusBody(t, "AddCartItem with a reused key", st, body, http.StatusBadRequest, codes.InvalidArgument)
	if items, _ := restCart(t, s, fmt.Sprintf("/cart/fallback/%d", user)); len(items) != 1 {
		t.Errorf("a refused reuse of the key changed the cart: %v", items)
	}

	// Each pair of calls has two records in Kafka with one ce_id.
	for _, key := range []string{cartKey, stockKey} {
		match := func(e harness.Event) bool {
			id := e.Headers["x-request-id"]
			return id == key+"-1" || id == key+"-2"
		}
		evs := r.WaitMatching(t, 2, eventTimeout, match)
		if evs[0].Headers["ce_id"] != evs[1].Headers["ce_id"] {
			t.Errorf("%s: the repeat's event has ce_id %s, the first %s; want one id", key, evs[1].Headers["ce_id"], evs[0].Headers["ce_id"])
		}
	}
}

// TestAnotherUsersKeyIsADifferentKey: user B sending user A's
// Idempotency-Key, with a deadline too short to finish (so the gateway
// must later ask the service what became of it), makes no event for A's
// change, for an add or a payment; sent normally, the key is B's own and
// B's request is applied as B's. Every add and payment has one event once
// deduplicated by ce_id.
func TestAnotherUsersKeyIsADifferentKey(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	r := harness.NewEventReader(t, harness.TopicCart, harness.TopicOrder)
	product := createProduct(t, s, "contested tea", 100, 300)
	victim, attacker := newID(), newID()
	asVictim := []string{"Authorization", harness.Bearer(s.Token(t, victim, ""))}
	asAttacker := []string{"Authorization", harness.Bearer(s.Token(t, attacker, ""))}
	addKey, payKey := fmt.Sprintf("victim-add-%d", victim), fmt.Sprintf("victim-pay-%d", victim)
	add := func(q int) string { return fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, product, q) }

	_, mine := do(t, s, http.StatusOK, "POST", "/cart/add", add(1), append(asVictim, "Idempotency-Key", addKey)...)
	victimItem := mine["item_id"]
	waitCart(t, s, victim, 1)
	_, order := do(t, s, http.StatusOK, "POST", "/order/pay", "{}", append(asVictim, "Idempotency-Key", payKey)...)
	victimOrder := order["order_id"]

	// The attacker's cart must not be empty, or a payment is refused at once.
	do(t, s, http.StatusOK, "POST", "/cart/add", add(1), asAttacker...)
	waitCart(t, s, attacker, 1)
	for q := 1; q <= 4; q++ {
		for _, call := range []struct{ path, body, key string }{{"/cart/add", add(q), addKey}, {"/order/pay", "{}", payKey}} {
			st, _, body := s.Do(t, "POST", call.path, call.body, append(asAttacker, "Idempotency-Key", call.key, "Grpc-Timeout", "1n")...)
			if st == http.StatusOK || st == http.StatusBadRequest {
				t.Fatalf("%s with another user's key and a 1ns deadline: %d %v, want it cut short", call.path, st, body)
			}
		}
	}
	// Sent normally, the key is the attacker's own: applied as theirs.
	h, theirs := do(t, s, http.StatusOK, "POST", "/cart/add", add(2), append(asAttacker, "Idempotency-Key", addKey)...)
	item := theirs
	if h.Get("Idempotency-Replayed") != "" || item["item_id"] == victimItem || item["user_id"] != str(attacker) {
		t.Errorf("another user's key: answered %v (replayed %q), want a new line of user %d", theirs, h.Get("Idempotency-Replayed"), attacker)
	}

	// Every intent resolved and every event published, then: one event per change.
	eventually(t, 60*time.Second, func() string {
		_, ready := s.Readiness(t)
		if n := findNumber(ready, "intents"); n != 0 {
			return fmt.Sprintf("%v intents still open", n)
		}
		if n := findNumber(ready, "depth"); n != 0 {
			return fmt.Sprintf("%v events not yet published", n)
		}
		return ""
	})
	time.Sleep(2 * time.Second) // the reader catches up with what was published
	evs := r.Events()
	// Other tests share the gateway's topics and number their items and
	// orders from 1 too: an event is this test's by its key (the user).
	for _, c := range []struct {
		typ     string
		user    int64
		subject any
	}{{"shop.events.v1.CartItemAdded", victim, victimItem}, {"shop.events.v1.OrderPaid", victim, victimOrder}, {"shop.events.v1.CartItemAdded", attacker, item["item_id"]}} {
		got := harness.Filter(evs, func(e harness.Event) bool {
			return e.Type() == c.typ && e.Key == fmt.Sprint(c.user) && e.Headers["ce_subject"] == fmt.Sprint(c.subject)
		})
		ids := map[string]bool{}
		for _, e := range got {
			ids[e.Headers["ce_id"]] = true
		}
		if len(ids) != 1 {
			t.Errorf("%s of %v: %d events with %d ce_ids, want one ce_id: %v", c.typ, c.subject, len(got), len(ids), got)
		}
	}
}

// findNumber returns the first number under key anywhere in m, -1 when none.
func findNumber(m any, key string) float64 {
	switch v := m.(type) {
	case map[string]any:
		if n, ok := v[key].(float64); ok {
			return n
		}
		for _, x := range v {
			if n := findNumber(x, key); n >= 0 {
				return n
			}
		}
	case []any:
		for _, x := range v {
			if n := findNumber(x, key); n >= 0 {
				return n
			}
		}
	}
	return -1
}

// TestIntentOfAKilledServiceIsResolved: a payment sent to a service_b that
// hangs and is then killed mid-request has an unknown outcome at the
// gateway. Once B is back, the gateway's intent is resolved (not applied:
// the change never committed) within the request's deadline plus the
// resolve delay, the intent log is acknowledged to the end, and the
// client's retry with the same key is applied normally, once.
func TestIntentOfAKilledServiceIsResolved(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	r := harness.NewEventReader(t, harness.TopicOrder)
	product := createProduct(t, s, "interrupted tea", 10, 300)
	user := newID()
	as := []string{"Authorization", harness.Bearer(s.Token(t, user, ""))}
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, product), as...)
	waitCart(t, s, user, 1)
	key := fmt.Sprintf("pay-%d", user)

	s.PauseServiceB()
	start := time.Now()
	st, _, body := s.Do(t, "POST", "/order/pay", "{}", append(as, "Idempotency-Key", key, "Grpc-Timeout", "2S")...)
	if st != http.StatusGatewayTimeout {
		t.Fatalf("pay to a hung service_b: %d %v, want 504", st, body)
	}
	s.KillServiceB()
	s.StartServiceB()

	const deadline, resolveAfter, slack = 2 * time.Second, 5 * time.Second, 5 * time.Second
	eventually(t, 60*time.Second, func() string {
		_, ready := s.Readiness(t)
		if n := findNumber(ready, "intents"); n != 0 {
			return fmt.Sprintf("%v intents still open", n)
		}
		if n := findNumber(ready, "intent_log"); n != 0 {
			return fmt.Sprintf("%v intent log records not acknowledged", n)
		}
		return ""
	})
	if took := time.Since(start); took > deadline+resolveAfter+slack {
		t.Errorf("the intent was settled %v after the request, want within its deadline %v plus the resolve delay %v (and %v of slack)", took, deadline, resolveAfter, slack)
	}
	if stockOf(t, s, product) != 10 {
		t.Errorf("stock taken by a payment that never committed")
	}

	h, order := do(t, s, http.StatusOK, "POST", "/order/pay", "{}", append(as, "Idempotency-Key", key)...)
	if h.Get("Idempotency-Replayed") != "" {
		t.Errorf("the retry was answered as a replay of a payment that never committed: %v", order)
	}
	evs := r.WaitMatching(t, 1, eventTimeout, func(e harness.Event) bool {
		return e.Type() == "shop.events.v1.OrderPaid" && e.Headers["ce_subject"] == fmt.Sprint(order["order_id"])
	})
	time.Sleep(time.Second)
	if n := len(harness.Filter(r.Events(), func(e harness.Event) bool { return e.Type() == "shop.events.v1.OrderPaid" && e.Key == str(user) })); n != 1 {
		t.Errorf("%d OrderPaid events for user %d, want 1 (first: %v)", n, user, evs[0])
	}
}
