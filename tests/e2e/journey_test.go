package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestJourney is the seed's journey: create products, list the stock page
// by page, add to the cart (on A), see the cart on B after the Kafka sync,
// pay, see the stock decremented and the order listed and fetched, and the
// cart empty on B and on A afterwards. Once over REST, once over gRPC.
func TestJourney(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	t.Run("REST", func(t *testing.T) {
		t.Parallel()
		journeyREST(t, s)
	})
	t.Run("gRPC", func(t *testing.T) {
		t.Parallel()
		journeyGRPC(t, s)
	})
}

func journeyREST(t *testing.T, s *harness.Stack) {
	// Products; ids and money sent as JSON numbers for one, strings for
	// another: both are proto3 JSON for int64.
	pen := createProduct(t, s, "pen", 10, 250)
	ink := newID()
	_, m := do(t, s, http.StatusOK, "POST", "/stock",
		fmt.Sprintf(`{"product_id":"%d","product_name":"ink","quantity":5,"price_cents":"1000"}`, ink))
	wantInt64(t, "created ink", m, "product_id", ink)
	wantInt64(t, "created ink", m, "price_cents", 1000)
	wantInt32(t, "created ink", m, "quantity", 5)
	pad := createProduct(t, s, "pad", 1, 99)

	// Pages of two: every page at most two items, ordered by product id,
	// and together they hold the three products.
	var seen []string
	token, pages := "", 0
	for {
		_, m := do(t, s, http.StatusOK, "GET", "/stock?page_size=2&page_token="+url.QueryEscape(token), "")
		items := list(t, m, "items")
		if got, want := len(items), 2; got > want {
			t.Fatalf("page %d has %d items, want at most %d", pages, got, want)
		}
		for _, it := range items {
			seen = append(seen, it["product_id"].(string))
		}
		pages++
		token, _ = m["next_page_token"].(string)
		if token == "" || pages > 1000 {
			break
		}
	}
	if pages < 2 {
		t.Errorf("listed %d page(s) of 2 items, want at least 2 for 3 products", pages)
	}
	for _, id := range []int64{pen, ink, pad} {
		if !slices.Contains(seen, str(id)) {
			t.Errorf("product %d not listed in %v", id, seen)
		}
	}
	if !slices.IsSortedFunc(seen, func(a, b string) int { return cmpDecimal(a, b) }) {
		t.Errorf("listed products %v, want them ordered by product id", seen)
	}

	// Add to the cart: A checks the stock and keeps the master cart.
	user := newID()
	_, first := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, pen))
	wantInt64(t, "added pen", first, "user_id", user)
	wantInt64(t, "added pen", first, "product_id", pen)
	wantInt32(t, "added pen", first, "quantity", 2)
	if id, _ := first["item_id"].(string); id == "" || id == "0" {
		t.Errorf("added pen: item_id %#v, want a non-zero int64 string", first["item_id"])
	}
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":"%d","product_id":"%d","quantity":1}`, user, ink))

	// B's read model catches up through Kafka.
	eventually(t, syncTimeout, func() string {
		items, source := restCart(t, s, "/cart?user_id="+str(user))
		if source == "fallback" {
			return "GET /cart answered from the fallback with service_b up"
		}
		if len(items) != 2 {
			return fmt.Sprintf("B's cart has %d items, want 2: %v", len(items), items)
		}
		return ""
	})

	// Pay: the whole cart becomes a PAID order, stock is decremented.
	_, order := do(t, s, http.StatusOK, "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, user))
	if got, want := order["status"], "ORDER_STATUS_PAID"; got != want {
		t.Errorf("paid order status = %v, want %v", got, want)
	}
	wantInt64(t, "paid order", order, "user_id", user)
	wantInt64(t, "paid order", order, "total_cents", 2*250+1000)
	if got, want := len(list(t, order, "items")), 2; got != want {
		t.Errorf("paid order has %d items, want %d", got, want)
	}
	orderID, _ := order["order_id"].(string)
	if got, want := stockOf(t, s, pen), 8; got != want {
		t.Errorf("pen stock after paying = %d, want %d", got, want)
	}
	if got, want := stockOf(t, s, ink), 4; got != want {
		t.Errorf("ink stock after paying = %d, want %d", got, want)
	}
	if got, want := stockOf(t, s, pad), 1; got != want {
		t.Errorf("pad stock (not bought) = %d, want %d", got, want)
	}

	// The order is listed and fetched.
	_, orders := do(t, s, http.StatusOK, "GET", "/order?user_id="+str(user), "")
	listed := list(t, orders, "orders")
	if len(listed) != 1 || listed[0]["order_id"] != orderID {
		t.Errorf("orders of the user = %v, want exactly order %s", listed, orderID)
	}
	_, fetched := do(t, s, http.StatusOK, "GET", "/order/"+orderID, "")
	if d := subset(order, fetched); d != "" {
		t.Errorf("GET /order/%s differs from the paid order: %s", orderID, d)
	}

	// The cart is empty on B at once, and on A once B's "order paid" got
	// there.
	if items, _ := restCart(t, s, "/cart/"+str(user)); len(items) != 0 {
		t.Errorf("B's cart after paying has %v, want none", items)
	}
	eventually(t, syncTimeout, func() string {
		if items, _ := restCart(t, s, "/cart/fallback/"+str(user)); len(items) != 0 {
			return fmt.Sprintf("A's fallback cart after paying has %d items, want none", len(items))
		}
		return ""
	})
}

func journeyGRPC(t *testing.T, s *harness.Stack) {
	c := newClients(t, s)
	var ids []int64
	for _, p := range []struct {
		name  string
		qty   int32
		price int64
	}{{"mug", 3, 1200}, {"tea", 20, 450}, {"cup", 7, 300}} {
		id := newID()
		resp := ok(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{
			Item: &stockv1.StockItem{ProductId: id, ProductName: p.name, Quantity: p.qty, PriceCents: p.price},
		}))(t, "CreateStock")
		if got, want := resp.GetItem().GetProductId(), id; got != want {
			t.Errorf("CreateStock product_id = %d, want %d", got, want)
		}
		ids = append(ids, id)
	}
	mug, tea := ids[0], ids[1]

	var seen []int64
	token, pages := "", 0
	for {
		resp := ok(c.stock.ListStock(rpcCtx(t), &stockv1.ListStockRequest{PageSize: 2, PageToken: token}))(t, "ListStock")
		if got, want := len(resp.GetItems()), 2; got > want {
			t.Fatalf("ListStock page %d has %d items, want at most %d", pages, got, want)
		}
		for _, it := range resp.GetItems() {
			seen = append(seen, it.GetProductId())
		}
		pages++
		if token = resp.GetNextPageToken(); token == "" || pages > 1000 {
			break
		}
	}
	for _, id := range ids {
		if !slices.Contains(seen, id) {
			t.Errorf("ListStock: product %d not listed in %v", id, seen)
		}
	}
	if !slices.IsSorted(seen) {
		t.Errorf("ListStock: %v, want ordered by product id", seen)
	}

	user := newID()
	added := ok(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: mug, Quantity: 3}))(t, "AddCartItem")
	if got, want := added.GetItem().GetQuantity(), int32(3); got != want {
		t.Errorf("AddCartItem quantity = %d, want %d", got, want)
	}
	if added.GetItem().GetAddedAt() == nil {
		t.Errorf("AddCartItem added_at is unset, want a timestamp")
	}
	ok(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: tea, Quantity: 4}))(t, "AddCartItem")

	eventually(t, syncTimeout, func() string {
		var hdr metadata.MD
		resp, err := c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user}, grpc.Header(&hdr))
		if err != nil {
			return fmt.Sprintf("GetCart: %v", err)
		}
		if got := hdr.Get("x-cart-source"); slices.Contains(got, "fallback") {
			return "GetCart answered from the fallback with service_b up"
		}
		if got, want := len(resp.GetItems()), 2; got != want {
			return fmt.Sprintf("GetCart has %d items, want %d", got, want)
		}
		return ""
	})

	paid := ok(c.order.PayOrder(rpcCtx(t), &orderv1.PayOrderRequest{UserId: user}))(t, "PayOrder").GetOrder()
	if got, want := paid.GetStatus(), orderv1.OrderStatus_ORDER_STATUS_PAID; got != want {
		t.Errorf("PayOrder status = %v, want %v", got, want)
	}
	if got, want := paid.GetTotalCents(), int64(3*1200+4*450); got != want {
		t.Errorf("PayOrder total_cents = %d, want %d", got, want)
	}
	for id, want := range map[int64]int32{mug: 0, tea: 16, ids[2]: 7} {
		got := ok(c.stock.GetStock(rpcCtx(t), &stockv1.GetStockRequest{ProductId: id}))(t, "GetStock").GetItem().GetQuantity()
		if got != want {
			t.Errorf("stock of %d after paying = %d, want %d", id, got, want)
		}
	}

	orders := ok(c.order.ListOrders(rpcCtx(t), &orderv1.ListOrdersRequest{UserId: user}))(t, "ListOrders").GetOrders()
	if len(orders) != 1 || orders[0].GetOrderId() != paid.GetOrderId() {
		t.Errorf("ListOrders = %v, want exactly order %d", orders, paid.GetOrderId())
	}
	got := ok(c.order.GetOrder(rpcCtx(t), &orderv1.GetOrderRequest{OrderId: paid.GetOrderId()}))(t, "GetOrder").GetOrder()
	if got.GetTotalCents() != paid.GetTotalCents() || got.GetUserId() != user || len(got.GetItems()) != 2 {
		t.Errorf("GetOrder = %v, want the paid order %v", got, paid)
	}

	cart := ok(c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user}))(t, "GetCart")
	if len(cart.GetItems()) != 0 {
		t.Errorf("GetCart after paying = %v, want no items", cart.GetItems())
	}
	eventually(t, syncTimeout, func() string {
		fb, err := c.cart.GetFallbackCart(rpcCtx(t), &cartv1.GetFallbackCartRequest{UserId: user})
		if err != nil {
			return fmt.Sprintf("GetFallbackCart: %v", err)
		}
		if n := len(fb.GetItems()); n != 0 {
			return fmt.Sprintf("GetFallbackCart after paying has %d items, want none", n)
		}
		return ""
	})
}

// cmpDecimal compares two non-negative decimal integers written as strings.
func cmpDecimal(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
