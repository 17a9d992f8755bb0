package e2e

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestRouting checks the error bodies of the REST router: an unknown path
// is 404, a known path with the wrong method 405 with an Allow header, and
// a body that is not the request message 400, all as google.rpc.Status JSON.
func TestRouting(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		wantStatus   int
		wantCode     codes.Code
		wantAllow    []string
	}{
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantCode: codes.NotFound},
		{name: "unknown subpath", method: "GET", path: "/stock/1/extra", wantStatus: 404, wantCode: codes.NotFound},
		{name: "unknown path POST", method: "POST", path: "/cart/nope/more", body: `{}`, wantStatus: 404, wantCode: codes.NotFound},
		{name: "PATCH /stock", method: "PATCH", path: "/stock", body: `{}`, wantStatus: 405, wantCode: codes.Unimplemented, wantAllow: []string{"GET", "POST"}},
		{name: "POST /stock/{id}", method: "POST", path: "/stock/1", body: `{}`, wantStatus: 405, wantCode: codes.Unimplemented, wantAllow: []string{"DELETE", "GET", "PUT"}},
		{name: "GET /order/pay", method: "DELETE", path: "/order/pay", wantStatus: 405, wantCode: codes.Unimplemented, wantAllow: []string{"POST"}},
		{name: "PUT /cart/add", method: "PUT", path: "/cart/add", body: `{}`, wantStatus: 405, wantCode: codes.Unimplemented, wantAllow: []string{"POST"}},
		{name: "bad JSON", method: "POST", path: "/stock", body: `{"product_id":3,`, wantStatus: 400, wantCode: codes.InvalidArgument},
		{name: "body not an object", method: "POST", path: "/cart/add", body: `[1,2]`, wantStatus: 400, wantCode: codes.InvalidArgument},
		{name: "wrong type", method: "POST", path: "/cart/add", body: `{"user_id":1,"product_id":1,"quantity":"two"}`, wantStatus: 400, wantCode: codes.InvalidArgument},
		{name: "unknown field", method: "POST", path: "/order/pay", body: `{"user_id":1,"coupon":"FREE"}`, wantStatus: 400, wantCode: codes.InvalidArgument},
		{name: "path id not a number", method: "GET", path: "/order/abc", wantStatus: 400, wantCode: codes.InvalidArgument},
		{name: "query id not a number", method: "GET", path: "/cart?user_id=abc", wantStatus: 400, wantCode: codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, h, body := s.Do(t, tc.method, tc.path, tc.body)
			wantStatusBody(t, tc.method+" "+tc.path, got, body, tc.wantStatus, tc.wantCode)
			if got, want := h.Get("Content-Type"), "application/json"; !strings.HasPrefix(got, want) {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if tc.wantAllow != nil {
				var allow []string
				for _, m := range strings.Split(h.Get("Allow"), ",") {
					if m = strings.TrimSpace(m); m != "" {
						allow = append(allow, m)
					}
				}
				slices.Sort(allow)
				if !slices.Equal(allow, tc.wantAllow) {
					t.Errorf("Allow = %q, want %v", h.Get("Allow"), tc.wantAllow)
				}
			}
		})
	}
}

// snapshot is what bad input must leave unchanged.
type snapshot struct {
	Stock    []map[string]any
	CartA    []map[string]any
	CartB    []map[string]any
	Orders   []map[string]any
	NoOrders []map[string]any
	NoCartB  []map[string]any
}

func takeSnapshot(tb testing.TB, s *harness.Stack, user, empty int64) snapshot {
	tb.Helper()
	var snap snapshot
	_, m := do(tb, s, http.StatusOK, "GET", "/stock?page_size=1000", "")
	snap.Stock = list(tb, m, "items")
	snap.CartA, _ = restCart(tb, s, "/cart/fallback/"+str(user))
	snap.CartB, _ = restCart(tb, s, "/cart/"+str(user))
	_, m = do(tb, s, http.StatusOK, "GET", "/order?user_id="+str(user), "")
	snap.Orders = list(tb, m, "orders")
	_, m = do(tb, s, http.StatusOK, "GET", "/order?user_id="+str(empty), "")
	snap.NoOrders = list(tb, m, "orders")
	snap.NoCartB, _ = restCart(tb, s, "/cart/"+str(empty))
	return snap
}

// TestBadInput sends bad input to every route, over REST and over gRPC,
// and checks each gets a clear error with the right status and that nothing
// changed: the stock, both copies of the cart and the orders. A missing
// user_id is not bad input: it is filled from the caller's token
// (TestAuthMatrix).
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)

	p := createProduct(t, s, "pencil", 5, 100)
	q := createProduct(t, s, "eraser", 2, 50)
	user, empty := newID(), newID()
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, p))
	eventually(t, syncTimeout, func() string {
		if items, _ := restCart(t, s, "/cart/"+str(user)); len(items) != 1 {
			return fmt.Sprintf("B's cart = %v, want the item added on A", items)
		}
		return ""
	})
	unknown := newID()
	before := takeSnapshot(t, s, user, empty)

	const (
		badRequest = http.StatusBadRequest
		notFound   = http.StatusNotFound
		conflict   = http.StatusConflict
	)
	t.Run("REST", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			method, path string
			body         string
			wantStatus   int
			wantCode     codes.Code
		}{
			{"ListStock page_size not a number", "GET", "/stock?page_size=x", "", badRequest, codes.InvalidArgument},
			{"ListStock foreign page_token", "GET", "/stock?page_token=garbage", "", badRequest, codes.InvalidArgument},
			{"GetStock unknown id", "GET", "/stock/" + str(unknown), "", notFound, codes.NotFound},
			{"GetStock id not a number", "GET", "/stock/abc", "", badRequest, codes.InvalidArgument},
			{"CreateStock duplicate", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"other","quantity":1,"price_cents":1}`, p), conflict, codes.AlreadyExists},
			{"CreateStock missing product_id", "POST", "/stock", `{"product_name":"x","quantity":1,"price_cents":1}`, badRequest, codes.InvalidArgument},
			{"CreateStock missing product_name", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"quantity":1,"price_cents":1}`, unknown), badRequest, codes.InvalidArgument},
			{"CreateStock quantity wrong type", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":"many","price_cents":1}`, unknown), badRequest, codes.InvalidArgument},
			{"CreateStock negative quantity", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":-1,"price_cents":1}`, unknown), badRequest, codes.InvalidArgument},
			{"CreateStock negative price", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":1,"price_cents":-1}`, unknown), badRequest, codes.InvalidArgument},
			{"CreateStock unknown field", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":1,"price_cents":1,"color":"red"}`, unknown), badRequest, codes.InvalidArgument},
			{"CreateStock id beyond int64", "POST", "/stock", `{"product_id":"9223372036854775808","product_name":"x","quantity":1,"price_cents":1}`, badRequest, codes.InvalidArgument},
			{"UpdateStock unknown id", "PUT", "/stock/" + str(unknown), `{"product_name":"x","quantity":1,"price_cents":1}`, notFound, codes.NotFound},
			{"UpdateStock negative quantity", "PUT", "/stock/" + str(p), `{"product_name":"x","quantity":-3,"price_cents":1}`, badRequest, codes.InvalidArgument},
			{"UpdateStock body id differs", "PUT", "/stock/" + str(p), fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":1,"price_cents":1}`, q), badRequest, codes.InvalidArgument},
			{"UpdateStock wrong type", "PUT", "/stock/" + str(p), `{"product_name":"x","quantity":1,"price_cents":"cheap"}`, badRequest, codes.InvalidArgument},
			{"DeleteStock unknown id", "DELETE", "/stock/" + str(unknown), "", notFound, codes.NotFound},
			{"DeleteStock id not a number", "DELETE", "/stock/abc", "", badRequest, codes.InvalidArgument},
			{"SetStockLevel negative quantity", "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":-1}`, p), badRequest, codes.InvalidArgument},
			{"SetStockLevel unknown id", "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, unknown), notFound, codes.NotFound},
			{"SetStockLevel missing product_id", "POST", "/stock/update", `{"quantity":1}`, badRequest, codes.InvalidArgument},
			{"SetStockLevel wrong type", "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":true}`, p), badRequest, codes.InvalidArgument},
			{"AddCartItem not enough stock", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":6}`, user, p), badRequest, codes.FailedPrecondition},
			{"AddCartItem unknown product", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, unknown), notFound, codes.NotFound},
			{"AddCartItem negative quantity", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":-1}`, user, p), badRequest, codes.InvalidArgument},
			{"AddCartItem missing quantity", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d}`, user, p), badRequest, codes.InvalidArgument},
			{"AddCartItem user_id wrong type", "POST", "/cart/add", fmt.Sprintf(`{"user_id":"me","product_id":%d,"quantity":1}`, p), badRequest, codes.InvalidArgument},
			{"GetFallbackCart user_id wrong type", "POST", "/cart/fallback", `{"user_id":1.5}`, badRequest, codes.InvalidArgument},
			{"GetFallbackCart GET id not a number", "GET", "/cart/fallback/abc", "", badRequest, codes.InvalidArgument},
			{"GetCart negative user_id", "GET", "/cart?user_id=-1", "", badRequest, codes.InvalidArgument},
			{"GetCart path id not a number", "GET", "/cart/abc", "", badRequest, codes.InvalidArgument},
			{"RemoveCartItem unknown id", "DELETE", "/cart/" + str(unknown), "", notFound, codes.NotFound},
			{"RemoveCartItem id not a number", "DELETE", "/cart/abc", "", badRequest, codes.InvalidArgument},
			{"ListOrders user_id not a number", "GET", "/order?user_id=abc", "", badRequest, codes.InvalidArgument},
			{"GetOrder unknown id", "GET", "/order/" + str(unknown), "", notFound, codes.NotFound},
			{"PayOrder empty cart", "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, empty), badRequest, codes.FailedPrecondition},
			{"PayOrder user_id wrong type", "POST", "/order/pay", `{"user_id":[1]}`, badRequest, codes.InvalidArgument},
			{"ProcessOrderStock not enough of one line", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":3}]}`, p, q), badRequest, codes.FailedPrecondition},
			{"ProcessOrderStock unknown product", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":1}]}`, p, unknown), notFound, codes.NotFound},
			{"ProcessOrderStock no items", "POST", "/order/process_stock", `{"items":[]}`, badRequest, codes.InvalidArgument},
			{"ProcessOrderStock negative quantity", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":-1}]}`, p), badRequest, codes.InvalidArgument},
			{"ProcessOrderStock zero quantity", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":0}]}`, p), badRequest, codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, _, body := s.Do(t, tc.method, tc.path, tc.body)
				wantStatusBody(t, tc.method+" "+tc.path+" "+tc.body, got, body, tc.wantStatus, tc.wantCode)
			})
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			err  error // the call's error; the calls run as the table is built
			want codes.Code
		}{
			{"ListStock foreign page_token", errOf(c.stock.ListStock(rpcCtx(t), &stockv1.ListStockRequest{PageToken: "garbage"})), codes.InvalidArgument},
			{"GetStock unknown id", errOf(c.stock.GetStock(rpcCtx(t), &stockv1.GetStockRequest{ProductId: unknown})), codes.NotFound},
			{"CreateStock duplicate", errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: p, ProductName: "dup", Quantity: 1, PriceCents: 1}})), codes.AlreadyExists},
			{"CreateStock no item", errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{})), codes.InvalidArgument},
			{"CreateStock negative quantity", errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: unknown, ProductName: "x", Quantity: -1, PriceCents: 1}})), codes.InvalidArgument},
			{"UpdateStock unknown id", errOf(c.stock.UpdateStock(rpcCtx(t), &stockv1.UpdateStockRequest{ProductId: unknown, Item: &stockv1.StockItem{ProductName: "x", Quantity: 1, PriceCents: 1}})), codes.NotFound},
			{"DeleteStock unknown id", errOf(c.stock.DeleteStock(rpcCtx(t), &stockv1.DeleteStockRequest{ProductId: unknown})), codes.NotFound},
			{"SetStockLevel negative quantity", errOf(c.stock.SetStockLevel(rpcCtx(t), &stockv1.SetStockLevelRequest{ProductId: p, Quantity: -1})), codes.InvalidArgument},
			{"AddCartItem not enough stock", errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: p, Quantity: 6})), codes.FailedPrecondition},
			{"AddCartItem unknown product", errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: unknown, Quantity: 1})), codes.NotFound},
			{"AddCartItem zero quantity", errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: p})), codes.InvalidArgument},
			{"RemoveCartItem unknown id", errOf(c.cart.RemoveCartItem(rpcCtx(t), &cartv1.RemoveCartItemRequest{ItemId: unknown})), codes.NotFound},
			{"GetOrder unknown id", errOf(c.order.GetOrder(rpcCtx(t), &orderv1.GetOrderRequest{OrderId: unknown})), codes.NotFound},
			{"PayOrder empty cart", errOf(c.order.PayOrder(rpcCtx(t), &orderv1.PayOrderRequest{UserId: empty})), codes.FailedPrecondition},
			{"ProcessOrderStock not enough of one line", errOf(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: p, Quantity: 1}, {ProductId: q, Quantity: 3}}})), codes.FailedPrecondition},
			{"ProcessOrderStock no items", errOf(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{})), codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantCode(t, tc.name, tc.err, tc.want)
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
