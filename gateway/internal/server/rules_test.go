package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// TestProtovalidateRules checks every protovalidate rule of the proto over
// REST and over gRPC: a request breaking it is refused with 400 /
// INVALID_ARGUMENT and a google.rpc.BadRequest naming the field, and the
// service chain is never called.
func TestProtovalidateRules(t *testing.T) {
	t.Parallel()
	item := func(name string, qty int32, price int64) *stockv1.StockItem {
		return &stockv1.StockItem{ProductName: name, Quantity: qty, PriceCents: price}
	}
	lines := make([]*orderv1.StockLine, 1001)
	for i := range lines {
		lines[i] = &orderv1.StockLine{ProductId: 1, Quantity: 1}
	}
	linesJSON := `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"product_id":1,"quantity":1},`, 1001), ",") + `]}`
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		grpcMethod   string
		grpcReq      proto.Message
		wantField    string
	}{
		{"cart quantity 0", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":0}`,
			"/shop.cart.v1.CartService/AddCartItem", &cartv1.AddCartItemRequest{UserId: 1, ProductId: 2, Quantity: 0}, "quantity"},
		{"cart quantity negative", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":-3}`,
			"/shop.cart.v1.CartService/AddCartItem", &cartv1.AddCartItemRequest{UserId: 1, ProductId: 2, Quantity: -3}, "quantity"},
		{"cart product_id 0", "POST", "/cart/add", `{"user_id":1,"product_id":0,"quantity":1}`,
			"/shop.cart.v1.CartService/AddCartItem", &cartv1.AddCartItemRequest{UserId: 1, ProductId: 0, Quantity: 1}, "product_id"},
		{"cart user_id negative", "POST", "/cart/add", `{"user_id":-1,"product_id":2,"quantity":1}`,
			"/shop.cart.v1.CartService/AddCartItem", &cartv1.AddCartItemRequest{UserId: -1, ProductId: 2, Quantity: 1}, "user_id"},
		{"get cart user_id negative", "GET", "/cart?user_id=-1", "",
			"/shop.cart.v1.CartService/GetCart", &cartv1.GetCartRequest{UserId: -1}, "user_id"},
		{"fallback cart user_id negative", "POST", "/cart/fallback", `{"user_id":-5}`,
			"/shop.cart.v1.CartService/GetFallbackCart", &cartv1.GetFallbackCartRequest{UserId: -5}, "user_id"},
		{"remove cart item_id 0", "DELETE", "/cart/0", "",
			"/shop.cart.v1.CartService/RemoveCartItem", &cartv1.RemoveCartItemRequest{ItemId: 0}, "item_id"},
		{"list orders user_id negative", "GET", "/order?user_id=-1", "",
			"/shop.order.v1.OrderService/ListOrders", &orderv1.ListOrdersRequest{UserId: -1}, "user_id"},
		{"get order order_id 0", "GET", "/order/0", "",
			"/shop.order.v1.OrderService/GetOrder", &orderv1.GetOrderRequest{OrderId: 0}, "order_id"},
		{"pay order user_id negative", "POST", "/order/pay", `{"user_id":-2}`,
			"/shop.order.v1.OrderService/PayOrder", &orderv1.PayOrderRequest{UserId: -2}, "user_id"},
		{"process_stock line quantity 0", "POST", "/order/process_stock", `{"items":[{"product_id":1,"quantity":0}]}`,
			"/shop.order.v1.OrderService/ProcessOrderStock", &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: 1, Quantity: 0}}}, "items[0].quantity"},
		{"process_stock line product_id negative", "POST", "/order/process_stock", `{"items":[{"product_id":-1,"quantity":1}]}`,
			"/shop.order.v1.OrderService/ProcessOrderStock", &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: -1, Quantity: 1}}}, "items[0].product_id"},
		{"process_stock too many lines", "POST", "/order/process_stock", linesJSON,
			"/shop.order.v1.OrderService/ProcessOrderStock", &orderv1.ProcessOrderStockRequest{Items: lines}, "items"},
		{"list stock page_size negative", "GET", "/stock?page_size=-1", "",
			"/shop.stock.v1.StockService/ListStock", &stockv1.ListStockRequest{PageSize: -1}, "page_size"},
		{"list stock page_size above 1000", "GET", "/stock?page_size=1001", "",
			"/shop.stock.v1.StockService/ListStock", &stockv1.ListStockRequest{PageSize: 1001}, "page_size"},
		{"list stock page_token too long", "GET", "/stock?page_token=" + strings.Repeat("a", 513), "",
			"/shop.stock.v1.StockService/ListStock", &stockv1.ListStockRequest{PageToken: strings.Repeat("a", 513)}, "page_token"},
		{"get stock product_id 0", "GET", "/stock/0", "",
			"/shop.stock.v1.StockService/GetStock", &stockv1.GetStockRequest{ProductId: 0}, "product_id"},
		{"delete stock product_id negative", "DELETE", "/stock/-4", "",
			"/shop.stock.v1.StockService/DeleteStock", &stockv1.DeleteStockRequest{ProductId: -4}, "product_id"},
		{"create stock negative price", "POST", "/stock", `{"product_id":1,"product_name":"tea","quantity":1,"price_cents":-1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 1, ProductName: "tea", Quantity: 1, PriceCents: -1}}, "item.price_cents"},
		{"create stock negative quantity", "POST", "/stock", `{"product_id":1,"product_name":"tea","quantity":-1,"price_cents":1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 1, ProductName: "tea", Quantity: -1, PriceCents: 1}}, "item.quantity"},
		{"create stock negative product_id", "POST", "/stock", `{"product_id":-1,"product_name":"tea","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: -1, ProductName: "tea", Quantity: 1, PriceCents: 1}}, "item.product_id"},
		{"create stock blank name", "POST", "/stock", `{"product_id":1,"product_name":"   ","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 1, ProductName: "   ", Quantity: 1, PriceCents: 1}}, "item.product_name"},
		{"update stock name too long", "PUT", "/stock/1", `{"product_name":"` + strings.Repeat("é", 501) + `","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/UpdateStock", &stockv1.UpdateStockRequest{ProductId: 1, Item: item(strings.Repeat("é", 501), 1, 1)}, "item.product_name"},
		{"update stock product_id 0", "PUT", "/stock/0", `{"product_name":"tea","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/UpdateStock", &stockv1.UpdateStockRequest{ProductId: 0, Item: item("tea", 1, 1)}, "product_id"},
		{"set stock level negative", "POST", "/stock/update", `{"product_id":1,"quantity":-1}`,
			"/shop.stock.v1.StockService/SetStockLevel", &stockv1.SetStockLevelRequest{ProductId: 1, Quantity: -1}, "quantity"},
		{"set stock level product_id 0", "POST", "/stock/update", `{"product_id":0,"quantity":1}`,
			"/shop.stock.v1.StockService/SetStockLevel", &stockv1.SetStockLevelRequest{ProductId: 0, Quantity: 1}, "product_id"},
		{"create stock product_id 0", "POST", "/stock", `{"product_id":0,"product_name":"tea","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 0, ProductName: "tea", Quantity: 1, PriceCents: 1}}, "item"},
		{"create stock product_id missing", "POST", "/stock", `{"product_name":"tea","quantity":1,"price_cents":1}`,
			"/shop.stock.v1.StockService/CreateStock", &stockv1.CreateStockRequest{Item: item("tea", 1, 1)}, "item"},
		{"list stock page_token not digits", "GET", "/stock?page_token=c3RvY2s6Mw", "",
			"/shop.stock.v1.StockService/ListStock", &stockv1.ListStockRequest{PageToken: "c3RvY2s6Mw"}, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServerBody(t, 1<<20)
			t.Run("REST", func(t *testing.T) {
				resp, body := ts.do(t, tc.method, tc.path, tc.body)
				if got, want := resp.StatusCode, 400; got != want {
					t.Errorf("status = %d %v, want %d", got, body, want)
				}
				if got, want := body["code"], float64(codes.InvalidArgument); got != want {
					t.Errorf("code = %v, want %v", got, want)
				}
				details, _ := json.Marshal(body["details"])
				if want := `"field":"` + tc.wantField + `"`; !strings.Contains(string(details), want) || !strings.Contains(string(details), "BadRequest") {
					t.Errorf("details %s, want a BadRequest with %s", details, want)
				}
			})
			t.Run("gRPC", func(t *testing.T) {
				err := ts.grpc.Invoke(context.Background(), tc.grpcMethod, tc.grpcReq, new(emptypb.Empty))
				st := status.Convert(err)
				if got, want := st.Code(), codes.InvalidArgument; got != want {
					t.Fatalf("code = %v (%v), want %v", got, err, want)
				}
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							fields = append(fields, v.GetField())
						}
					}
				}
				if len(fields) == 0 || fields[0] != tc.wantField {
					t.Errorf("violations on %v, want %q first", fields, tc.wantField)
				}
			})
			if got := ts.calls.Load(); got != 0 {
				t.Errorf("the service chain was called %d times, want none", got)
			}
		})
	}
}
