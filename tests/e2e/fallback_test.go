package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestCartFallback stops service_b: GET /cart (both bindings) and gRPC
// GetCart answer from A's master cart and say so (X-Cart-Source: fallback,
// x-cart-source metadata), B's other routes are 503 UNAVAILABLE, A's keep
// working. After B restarts, the cart is B's again and holds what was
// added while B was down.
func TestCartFallback(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	product := createProduct(t, s, "lamp", 10, 2500)
	user := newID()
	_, added := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, product))
	itemID := added["item_id"]
	eventually(t, syncTimeout, func() string {
		if items, _ := restCart(t, s, "/cart/"+str(user)); len(items) != 1 {
			return fmt.Sprintf("B's cart = %v, want the item added on A", items)
		}
		return ""
	})

	s.StopServiceB()

	t.Run("REST answers from A", func(t *testing.T) {
		for _, path := range []string{"/cart?user_id=" + str(user), "/cart/" + str(user)} {
			h, m := do(t, s, http.StatusOK, "GET", path, "")
			if got, want := h.Get("X-Cart-Source"), "fallback"; got != want {
				t.Errorf("GET %s with service_b down: X-Cart-Source = %q, want %q", path, got, want)
			}
			wantInt64(t, "GET "+path, m, "user_id", user)
			if items := list(t, m, "items"); len(items) != 1 || items[0]["item_id"] != itemID {
				t.Errorf("GET %s with service_b down: items %v, want item %v", path, items, itemID)
			}
		}
	})
	t.Run("gRPC answers from A", func(t *testing.T) {
		var hdr metadata.MD
		resp, err := c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user}, grpc.Header(&hdr))
		if err != nil {
			t.Fatalf("GetCart with service_b down: %v, want the fallback cart", err)
		}
		if got := hdr.Get("x-cart-source"); !slices.Equal(got, []string{"fallback"}) {
			t.Errorf("GetCart with service_b down: x-cart-source = %q, want [fallback]", got)
		}
		if got := resp.GetItems(); len(got) != 1 || str(got[0].GetItemId()) != itemID {
			t.Errorf("GetCart with service_b down: items %v, want item %v", got, itemID)
		}
	})
	t.Run("B's other routes are unavailable", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/order?user_id=" + str(user), ""},
			{"POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, user)},
			{"DELETE", "/cart/" + fmt.Sprint(itemID), ""},
		} {
			got, _, body := s.Do(t, tc.method, tc.path, tc.body)
			wantStatusBody(t, tc.method+" "+tc.path+" with service_b down", got, body, http.StatusServiceUnavailable, codes.Unavailable)
		}
	})
	var second any
	t.Run("A keeps working", func(t *testing.T) {
		_, m := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, product))
		second = m["item_id"]
		h, m := do(t, s, http.StatusOK, "GET", "/cart/"+str(user), "")
		if got, want := h.Get("X-Cart-Source"), "fallback"; got != want {
			t.Errorf("X-Cart-Source = %q, want %q", got, want)
		}
		if items := list(t, m, "items"); len(items) != 2 {
			t.Errorf("fallback cart after an add on A = %v, want 2 items", items)
		}
	})

	s.StartServiceB()

	t.Run("B serves again and caught up", func(t *testing.T) {
		eventually(t, syncTimeout, func() string {
			items, source := restCart(t, s, "/cart?user_id="+str(user))
			if source == "fallback" {
				return "GET /cart still answered from the fallback after service_b restarted"
			}
			var ids []any
			for _, it := range items {
				ids = append(ids, it["item_id"])
			}
			if len(ids) != 2 || !slices.Contains(ids, itemID) || !slices.Contains(ids, second) {
				return fmt.Sprintf("B's cart = %v, want items %v and %v", ids, itemID, second)
			}
			return ""
		})
		var hdr metadata.MD
		ok(c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user}, grpc.Header(&hdr)))(t, "GetCart")
		if got := hdr.Get("x-cart-source"); slices.Contains(got, "fallback") {
			t.Errorf("GetCart after service_b restarted: x-cart-source = %q, want no fallback", got)
		}
	})
}

// TestHungServiceBIsPassedOver freezes service_b (SIGSTOP): the first cart
// read pays the primary's budget and falls back; once B has let that
// deadline pass it is passed over, so later cart reads go to the fallback at
// once and GET /order (no fallback) fails fast with 503 and Retry-After over
// REST, UNAVAILABLE with retry-after over gRPC, instead of waiting out the
// upstream timeout. After B resumes, a health probe brings it back.
func TestHungServiceBIsPassedOver(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	user := newID()
	do(t, s, http.StatusOK, "GET", "/cart/"+str(user), "")

	s.PauseServiceB()
	resumed := false
	defer func() {
		if !resumed {
			s.ResumeServiceB()
		}
	}()
	timed := func(method, path string) (int, http.Header, time.Duration) {
		start := time.Now()
		got, h, _ := s.Do(t, method, path, "")
		return got, h, time.Since(start)
	}
	got, h, first := timed("GET", "/cart/"+str(user))
	if got != http.StatusOK || h.Get("X-Cart-Source") != "fallback" {
		t.Fatalf("first cart read with service_b hung: %d, X-Cart-Source %q; want the fallback", got, h.Get("X-Cart-Source"))
	}
	t.Logf("first cart read with service_b hung: %s", first)
	// The budget of a cart read is at most 1 s; a read that still waited
	// for B would take at least that.
	for i := range 5 {
		got, h, took := timed("GET", "/cart/"+str(user))
		if got != http.StatusOK || h.Get("X-Cart-Source") != "fallback" || took >= time.Second {
			t.Errorf("cart read %d with service_b passed over: %d, X-Cart-Source %q, %s; want the fallback at once", i, got, h.Get("X-Cart-Source"), took)
		}
		t.Logf("cart read %d with service_b passed over: %s", i, took)
	}
	got, h, took := timed("GET", "/order?user_id="+str(user))
	if got != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" || took >= time.Second {
		t.Errorf("GET /order with service_b passed over: %d, Retry-After %q, %s; want 503 at once with Retry-After: 1", got, h.Get("Retry-After"), took)
	}
	var hdr metadata.MD
	start := time.Now()
	_, err := c.order.ListOrders(rpcCtx(t), &orderv1.ListOrdersRequest{UserId: user}, grpc.Header(&hdr))
	wantCode(t, "gRPC ListOrders with service_b passed over", err, codes.Unavailable)
	if took := time.Since(start); took >= time.Second || !slices.Equal(hdr.Get("retry-after"), []string{"1"}) {
		t.Errorf("gRPC ListOrders with service_b passed over: %s, retry-after %q; want at once with retry-after 1", took, hdr.Get("retry-after"))
	}

	s.ResumeServiceB()
	resumed = true
	eventually(t, syncTimeout, func() string {
		if _, source := restCart(t, s, "/cart/"+str(user)); source == "fallback" {
			return "GET /cart still answered from the fallback after service_b resumed"
		}
		return ""
	})
}
