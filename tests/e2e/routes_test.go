package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestRoutes calls every route of the API (the README's API table, the
// google.api.http rules of proto/) over REST, both bindings where a method
// has two, with int64 fields sent as JSON numbers and as strings, and checks
// that int64 fields are answered as strings; then every RPC over gRPC.
func TestRoutes(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	t.Run("REST", func(t *testing.T) {
		t.Parallel()
		routesREST(t, s)
	})
	t.Run("gRPC", func(t *testing.T) {
		t.Parallel()
		routesGRPC(t, s)
	})
	t.Run("health", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/healthz", "/readyz"} {
			if got, _, body := s.Do(t, "GET", path, ""); got != http.StatusOK {
				t.Errorf("GET %s = %d %v, want %d", path, got, body, http.StatusOK)
			}
		}
	})
}

// wantItem checks a stock item answered over REST.
func wantItem(tb testing.TB, what string, m map[string]any, id int64, name string, qty int, price int64) {
	tb.Helper()
	wantInt64(tb, what, m, "product_id", id)
	if got := m["product_name"]; got != name {
		tb.Errorf("%s: product_name = %v, want %q", what, got, name)
	}
	wantInt32(tb, what, m, "quantity", qty)
	wantInt64(tb, what, m, "price_cents", price)
}

func routesREST(t *testing.T, s *harness.Stack) {
	a, b, c := newID(), newID(), newID()
	user, other := newID(), newID()
	var itemID, orderID string

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"POST /stock numbers", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/stock",
				fmt.Sprintf(`{"product_id":%d,"product_name":"alpha","quantity":10,"price_cents":150}`, a))
			wantItem(t, "created", m, a, "alpha", 10, 150)
		}},
		{"POST /stock strings", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/stock",
				fmt.Sprintf(`{"product_id":"%d","product_name":"beta","quantity":20,"price_cents":"75"}`, b))
			wantItem(t, "created", m, b, "beta", 20, 75)
			do(t, s, http.StatusOK, "POST", "/stock",
				fmt.Sprintf(`{"product_id":"%d","product_name":"gamma","quantity":3,"price_cents":"5"}`, c))
		}},
		{"GET /stock/{product_id}", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "GET", "/stock/"+str(a), "")
			wantItem(t, "fetched", m, a, "alpha", 10, 150)
		}},
		{"GET /stock page_size page_token", func(t *testing.T) {
			_, first := do(t, s, http.StatusOK, "GET", "/stock?page_size=1", "")
			if got, want := len(list(t, first, "items")), 1; got != want {
				t.Fatalf("first page has %d items, want %d", got, want)
			}
			token, _ := first["next_page_token"].(string)
			if token == "" {
				t.Fatalf("first page of 1 with 3+ products has no next_page_token: %v", first)
			}
			_, second := do(t, s, http.StatusOK, "GET", "/stock?page_size=1&page_token="+token, "")
			items := list(t, second, "items")
			if len(items) != 1 || items[0]["product_id"] == list(t, first, "items")[0]["product_id"] {
				t.Errorf("second page %v, want one item other than the first page's", items)
			}
			_, all := do(t, s, http.StatusOK, "GET", "/stock", "")
			if got := len(list(t, all, "items")); got < 3 {
				t.Errorf("GET /stock lists %d items, want at least 3", got)
			}
		}},
		{"PUT /stock/{product_id} numbers", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "PUT", "/stock/"+str(a),
				`{"product_name":"alpha2","quantity":12,"price_cents":160}`)
			wantItem(t, "updated", m, a, "alpha2", 12, 160)
		}},
		{"PUT /stock/{product_id} strings", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "PUT", "/stock/"+str(b),
				fmt.Sprintf(`{"product_id":"%d","product_name":"beta2","quantity":21,"price_cents":"80"}`, b))
			wantItem(t, "updated", m, b, "beta2", 21, 80)
		}},
		{"POST /stock/update numbers", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":11}`, a))
			wantItem(t, "set", m, a, "alpha2", 11, 160)
		}},
		{"POST /stock/update strings", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":"%d","quantity":22}`, b))
			wantItem(t, "set", m, b, "beta2", 22, 80)
		}},
		{"POST /cart/add numbers", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":2}`, user, a))
			wantInt64(t, "added", m, "user_id", user)
			wantInt64(t, "added", m, "product_id", a)
			wantInt32(t, "added", m, "quantity", 2)
			if _, ok := m["added_at"].(string); !ok {
				t.Errorf("added: added_at = %#v, want an RFC 3339 string", m["added_at"])
			}
			itemID, _ = m["item_id"].(string)
			if itemID == "" {
				t.Fatalf("added: item_id = %#v, want an int64 string", m["item_id"])
			}
		}},
		{"POST /cart/add strings", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":"%d","product_id":"%d","quantity":1}`, other, b))
			wantInt64(t, "added", m, "user_id", other)
		}},
		{"POST /cart/fallback", func(t *testing.T) {
			for _, body := range []string{fmt.Sprintf(`{"user_id":%d}`, user), fmt.Sprintf(`{"user_id":"%d"}`, user)} {
				_, m := do(t, s, http.StatusOK, "POST", "/cart/fallback", body)
				wantInt64(t, "fallback cart", m, "user_id", user)
				if items := list(t, m, "items"); len(items) != 1 || items[0]["item_id"] != itemID {
					t.Errorf("POST /cart/fallback %s items = %v, want item %s", body, items, itemID)
				}
			}
		}},
		{"GET /cart/fallback/{user_id}", func(t *testing.T) {
			items, _ := restCart(t, s, "/cart/fallback/"+str(user))
			if len(items) != 1 || items[0]["item_id"] != itemID {
				t.Errorf("items = %v, want item %s", items, itemID)
			}
		}},
		{"GET /cart?user_id=", func(t *testing.T) {
			eventually(t, syncTimeout, func() string {
				items, source := restCart(t, s, "/cart?user_id="+str(user))
				if source == "fallback" {
					return "answered from the fallback with service_b up"
				}
				if len(items) != 1 || items[0]["item_id"] != itemID {
					return fmt.Sprintf("B's cart = %v, want item %s", items, itemID)
				}
				return ""
			})
		}},
		{"GET /cart/{user_id}", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "GET", "/cart/"+str(user), "")
			wantInt64(t, "cart", m, "user_id", user)
			if items := list(t, m, "items"); len(items) != 1 || items[0]["item_id"] != itemID {
				t.Errorf("items = %v, want item %s", items, itemID)
			}
		}},
		{"DELETE /cart/{item_id}", func(t *testing.T) {
			eventually(t, syncTimeout, func() string {
				if items, _ := restCart(t, s, "/cart/"+str(other)); len(items) != 1 {
					return fmt.Sprintf("B's cart of the other user = %v, want 1 item", items)
				}
				return ""
			})
			items, _ := restCart(t, s, "/cart/"+str(other))
			id, _ := items[0]["item_id"].(string)
			_, m := do(t, s, http.StatusOK, "DELETE", "/cart/"+id, "")
			if got := m["item_id"]; got != id {
				t.Errorf("removed item_id = %v, want %s", got, id)
			}
			wantInt64(t, "removed", m, "user_id", other)
			if items, _ := restCart(t, s, "/cart/"+str(other)); len(items) != 0 {
				t.Errorf("B's cart after removal = %v, want empty", items)
			}
			eventually(t, syncTimeout, func() string {
				if items, _ := restCart(t, s, "/cart/fallback/"+str(other)); len(items) != 0 {
					return fmt.Sprintf("A's cart after removal on B = %v, want empty", items)
				}
				return ""
			})
		}},
		{"POST /order/pay", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/order/pay", fmt.Sprintf(`{"user_id":"%d"}`, user))
			orderID, _ = m["order_id"].(string)
			wantInt64(t, "paid", m, "user_id", user)
			wantInt64(t, "paid", m, "total_cents", 2*160)
			items := list(t, m, "items")
			if len(items) != 1 {
				t.Fatalf("paid items = %v, want 1", items)
			}
			wantInt64(t, "paid item", items[0], "product_id", a)
			wantInt64(t, "paid item", items[0], "price_cents", 160)
			wantInt32(t, "paid item", items[0], "quantity", 2)
		}},
		{"GET /order?user_id=", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "GET", "/order?user_id="+str(user), "")
			if orders := list(t, m, "orders"); len(orders) != 1 || orders[0]["order_id"] != orderID {
				t.Errorf("orders = %v, want order %s", orders, orderID)
			}
		}},
		{"GET /order/{order_id}", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "GET", "/order/"+orderID, "")
			if got := m["order_id"]; got != orderID {
				t.Errorf("order_id = %v, want %s", got, orderID)
			}
			if got, want := m["status"], "ORDER_STATUS_PAID"; got != want {
				t.Errorf("status = %v, want %v", got, want)
			}
		}},
		{"POST /order/process_stock", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "POST", "/order/process_stock",
				fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":"%d","quantity":2}]}`, a, b))
			items := list(t, m, "items")
			if len(items) != 2 {
				t.Fatalf("items = %v, want 2", items)
			}
			byID := map[any]map[string]any{items[0]["product_id"]: items[0], items[1]["product_id"]: items[1]}
			wantItem(t, "processed", byID[str(a)], a, "alpha2", 11-2-1, 160)
			wantItem(t, "processed", byID[str(b)], b, "beta2", 20, 80)
		}},
		{"DELETE /stock/{product_id}", func(t *testing.T) {
			_, m := do(t, s, http.StatusOK, "DELETE", "/stock/"+str(c), "")
			wantItem(t, "deleted", m, c, "gamma", 3, 5)
			st, _, body := s.Do(t, "GET", "/stock/"+str(c), "")
			wantStatusBody(t, "GET a deleted product", st, body, http.StatusNotFound, 5)
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; the later steps depend on it", step.name)
		}
	}
}

func routesGRPC(t *testing.T, s *harness.Stack) {
	c := newClients(t, s)
	a, b := newID(), newID()
	user := newID()
	var item *cartv1.CartItem
	var order *orderv1.Order

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"CreateStock", func(t *testing.T) {
			for _, it := range []*stockv1.StockItem{
				{ProductId: a, ProductName: "delta", Quantity: 9, PriceCents: 1 << 40},
				{ProductId: b, ProductName: "epsilon", Quantity: 4, PriceCents: 10},
			} {
				got := ok(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: it}))(t, "CreateStock").GetItem()
				if got.GetProductId() != it.ProductId || got.GetPriceCents() != it.PriceCents {
					t.Errorf("CreateStock = %v, want %v", got, it)
				}
			}
		}},
		{"GetStock", func(t *testing.T) {
			got := ok(c.stock.GetStock(rpcCtx(t), &stockv1.GetStockRequest{ProductId: a}))(t, "GetStock").GetItem()
			if got.GetProductName() != "delta" || got.GetPriceCents() != 1<<40 {
				t.Errorf("GetStock = %v, want delta at %d", got, int64(1)<<40)
			}
		}},
		{"ListStock", func(t *testing.T) {
			first := ok(c.stock.ListStock(rpcCtx(t), &stockv1.ListStockRequest{PageSize: 1}))(t, "ListStock")
			if len(first.GetItems()) != 1 || first.GetNextPageToken() == "" {
				t.Fatalf("ListStock page_size 1 = %v, want one item and a next page", first)
			}
			next := ok(c.stock.ListStock(rpcCtx(t), &stockv1.ListStockRequest{PageSize: 1, PageToken: first.GetNextPageToken()}))(t, "ListStock")
			if len(next.GetItems()) != 1 || next.GetItems()[0].GetProductId() <= first.GetItems()[0].GetProductId() {
				t.Errorf("ListStock second page = %v, want the next product after %v", next.GetItems(), first.GetItems())
			}
		}},
		{"UpdateStock", func(t *testing.T) {
			got := ok(c.stock.UpdateStock(rpcCtx(t), &stockv1.UpdateStockRequest{ProductId: a,
				Item: &stockv1.StockItem{ProductName: "delta2", Quantity: 8, PriceCents: 500}}))(t, "UpdateStock").GetItem()
			if got.GetProductId() != a || got.GetProductName() != "delta2" || got.GetQuantity() != 8 || got.GetPriceCents() != 500 {
				t.Errorf("UpdateStock = %v, want delta2 8 at 500", got)
			}
		}},
		{"SetStockLevel", func(t *testing.T) {
			got := ok(c.stock.SetStockLevel(rpcCtx(t), &stockv1.SetStockLevelRequest{ProductId: a, Quantity: 7}))(t, "SetStockLevel").GetItem()
			if got.GetQuantity() != 7 || got.GetProductName() != "delta2" {
				t.Errorf("SetStockLevel = %v, want delta2 at quantity 7", got)
			}
		}},
		{"AddCartItem", func(t *testing.T) {
			item = ok(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: a, Quantity: 2}))(t, "AddCartItem").GetItem()
			if item.GetItemId() == 0 || item.GetUserId() != user || item.GetProductId() != a || item.GetQuantity() != 2 {
				t.Errorf("AddCartItem = %v, want user %d product %d quantity 2", item, user, a)
			}
		}},
		{"GetFallbackCart", func(t *testing.T) {
			got := ok(c.cart.GetFallbackCart(rpcCtx(t), &cartv1.GetFallbackCartRequest{UserId: user}))(t, "GetFallbackCart")
			if got.GetUserId() != user || len(got.GetItems()) != 1 || got.GetItems()[0].GetItemId() != item.GetItemId() {
				t.Errorf("GetFallbackCart = %v, want item %d", got, item.GetItemId())
			}
		}},
		{"GetCart", func(t *testing.T) {
			eventually(t, syncTimeout, func() string {
				var hdr metadata.MD
				got, err := c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user}, grpc.Header(&hdr))
				if err != nil {
					return fmt.Sprintf("GetCart: %v", err)
				}
				if src := hdr.Get("x-cart-source"); len(src) > 0 && src[0] == "fallback" {
					return "GetCart answered from the fallback with service_b up"
				}
				if len(got.GetItems()) != 1 || got.GetItems()[0].GetItemId() != item.GetItemId() {
					return fmt.Sprintf("GetCart = %v, want item %d", got, item.GetItemId())
				}
				return ""
			})
		}},
		{"RemoveCartItem", func(t *testing.T) {
			other := ok(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: b, Quantity: 1}))(t, "AddCartItem").GetItem()
			eventually(t, syncTimeout, func() string {
				got, err := c.cart.GetCart(rpcCtx(t), &cartv1.GetCartRequest{UserId: user})
				if err != nil || len(got.GetItems()) != 2 {
					return fmt.Sprintf("GetCart = %v, %v; want 2 items", got, err)
				}
				return ""
			})
			got := ok(c.cart.RemoveCartItem(rpcCtx(t), &cartv1.RemoveCartItemRequest{ItemId: other.GetItemId()}))(t, "RemoveCartItem").GetItem()
			if got.GetItemId() != other.GetItemId() || got.GetProductId() != b {
				t.Errorf("RemoveCartItem = %v, want item %d", got, other.GetItemId())
			}
		}},
		{"PayOrder", func(t *testing.T) {
			order = ok(c.order.PayOrder(rpcCtx(t), &orderv1.PayOrderRequest{UserId: user}))(t, "PayOrder").GetOrder()
			if order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || order.GetTotalCents() != 2*500 || len(order.GetItems()) != 1 {
				t.Errorf("PayOrder = %v, want one line of 2 at 500, PAID", order)
			}
		}},
		{"ListOrders", func(t *testing.T) {
			got := ok(c.order.ListOrders(rpcCtx(t), &orderv1.ListOrdersRequest{UserId: user}))(t, "ListOrders").GetOrders()
			if len(got) != 1 || got[0].GetOrderId() != order.GetOrderId() {
				t.Errorf("ListOrders = %v, want order %d", got, order.GetOrderId())
			}
		}},
		{"GetOrder", func(t *testing.T) {
			got := ok(c.order.GetOrder(rpcCtx(t), &orderv1.GetOrderRequest{OrderId: order.GetOrderId()}))(t, "GetOrder").GetOrder()
			if got.GetOrderId() != order.GetOrderId() || got.GetCreatedAt() == nil {
				t.Errorf("GetOrder = %v, want order %d with created_at", got, order.GetOrderId())
			}
		}},
		{"ProcessOrderStock", func(t *testing.T) {
			got := ok(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{
				Items: []*orderv1.StockLine{{ProductId: a, Quantity: 1}, {ProductId: b, Quantity: 1}},
			}))(t, "ProcessOrderStock").GetItems()
			want := map[int64]int32{a: 7 - 2 - 1, b: 3}
			if len(got) != 2 {
				t.Fatalf("ProcessOrderStock = %v, want 2 items", got)
			}
			for _, it := range got {
				if it.GetQuantity() != want[it.GetProductId()] {
					t.Errorf("ProcessOrderStock: %d at %d, want %d", it.GetProductId(), it.GetQuantity(), want[it.GetProductId()])
				}
			}
		}},
		{"DeleteStock", func(t *testing.T) {
			got := ok(c.stock.DeleteStock(rpcCtx(t), &stockv1.DeleteStockRequest{ProductId: b}))(t, "DeleteStock").GetItem()
			if got.GetProductId() != b || got.GetProductName() != "epsilon" {
				t.Errorf("DeleteStock = %v, want product %d as it was", got, b)
			}
		}},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.Fatalf("step %q failed; the later steps depend on it", step.name)
		}
	}
}
