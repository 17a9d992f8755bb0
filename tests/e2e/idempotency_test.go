package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"

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
