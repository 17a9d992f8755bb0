package forward_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// fakeDoer records requests and answers with a canned response or error.
type fakeDoer struct {
	name string
	mu   sync.Mutex
	reqs []*upstream.Request
	body string
	err  error
}

func (d *fakeDoer) Do(_ context.Context, r *upstream.Request) (*upstream.Response, error) {
	d.mu.Lock()
	d.reqs = append(d.reqs, r)
	d.mu.Unlock()
	resp := &upstream.Response{Status: http.StatusOK, Body: []byte(d.body), Instance: "http://" + d.name, Attempts: 1}
	if d.err != nil {
		return resp, d.err
	}
	return resp, nil
}

func (d *fakeDoer) last(tb testing.TB) *upstream.Request {
	tb.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.reqs) == 0 {
		tb.Fatalf("%s: no request", d.name)
	}
	return d.reqs[len(d.reqs)-1]
}

func newForwarder(tb testing.TB, a, b *fakeDoer) *forward.Forwarder {
	tb.Helper()
	f, err := forward.New(app.Services(), forward.DefaultTable, map[string]forward.Doer{forward.ServiceA: a, forward.ServiceB: b}, forward.Options{Asserter: testAsserter})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// testAsserter signs the forwarded calls' identity assertions.
var testAsserter = func() *svcid.Signer {
	s, _, err := svcid.Generate("shop-gateway")
	if err != nil {
		panic(err)
	}
	return s
}()

// seedOwner is the seed gateway's routing by path: /cart/add, /stock*,
// /cart/fallback and /order/process_stock to A, the rest of /cart and /order
// to B.
func seedOwner(path string) string {
	switch {
	case path == "/cart/add", strings.HasPrefix(path, "/stock"), strings.HasPrefix(path, "/cart/fallback"), path == "/order/process_stock":
		return forward.ServiceA
	case strings.HasPrefix(path, "/cart"), strings.HasPrefix(path, "/order"):
		return forward.ServiceB
	}
	return ""
}

func TestTableCoversEveryRPCAndMatchesSeedRouting(t *testing.T) {
	t.Parallel()
	seen := map[protoreflect.FullName]bool{}
	for _, sd := range app.Services() {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			if httprule.Streaming(md) {
				continue // served by the gateway from Kafka
			}
			seen[md.FullName()] = true
			rt, ok := forward.DefaultTable[md.FullName()]
			if !ok {
				t.Errorf("%s: no route", md.FullName())
				continue
			}
			bs := httprule.Bindings(md)
			if len(bs) == 0 {
				t.Errorf("%s: no http rule", md.FullName())
			}
			for _, b := range bs {
				if got, want := rt.Upstream, seedOwner(b.Template); got != want {
					t.Errorf("%s %s %s: upstream %q, seed routes it to %q", md.FullName(), b.Method, b.Template, got, want)
				}
			}
		}
	}
	for name := range forward.DefaultTable {
		if !seen[name] {
			t.Errorf("table row %s is not an RPC", name)
		}
	}
	if got, want := len(seen), 14; got != want {
		t.Errorf("RPC count = %d, want %d", got, want)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	t.Parallel()
	table := forward.Table{"shop.stock.v1.StockService.Nope": {Upstream: forward.ServiceA}}
	_, err := forward.New(app.Services(), table, map[string]forward.Doer{}, forward.Options{Asserter: testAsserter})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"GetStock: no route", "Nope: in the table but not a served method"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBuildsUpstreamRequestFromHTTPRule(t *testing.T) {
	t.Parallel()
	added := `{"item_id":7,"user_id":3,"product_id":1,"quantity":2,"added_at":"2026-11-25T10:00:00Z"}`
	stock := `{"product_id":1,"product_name":"tea","quantity":5,"price_cents":250}`
	order := `{"order_id":9,"user_id":3,"items":[{"product_id":1,"quantity":2,"price_cents":250}],"total_cents":500,"status":"ORDER_STATUS_PAID","created_at":"2026-11-25T10:00:00Z"}`
	cases := []struct {
		name     string
		method   string
		req      proto.Message
		resp     proto.Message
		body     string
		upstream string
		wantVerb string
		wantPath string
		wantBody string // JSON, compared structurally; "" means no body
		check    func(t *testing.T, resp proto.Message)
	}{
		{
			name: "ListStock query", method: "/shop.stock.v1.StockService/ListStock",
			req: &stockv1.ListStockRequest{PageSize: 10, PageToken: "a b"}, resp: &stockv1.ListStockResponse{},
			body: `{"items":[` + stock + `],"next_page_token":"x"}`, upstream: forward.ServiceA,
			wantVerb: "GET", wantPath: "/stock?page_size=10&page_token=a+b",
			check: func(t *testing.T, resp proto.Message) {
				r := resp.(*stockv1.ListStockResponse)
				if len(r.Items) != 1 || r.NextPageToken != "x" || r.Items[0].PriceCents != 250 {
					t.Errorf("resp = %v", r)
				}
			},
		},
		{
			name: "ListStock no query", method: "/shop.stock.v1.StockService/ListStock",
			req: &stockv1.ListStockRequest{}, resp: &stockv1.ListStockResponse{},
			body: `{"items":[]}`, upstream: forward.ServiceA, wantVerb: "GET", wantPath: "/stock",
		},
		{
			name: "GetStock path var and response_body", method: "/shop.stock.v1.StockService/GetStock",
			req: &stockv1.GetStockRequest{ProductId: 42}, resp: &stockv1.GetStockResponse{},
			body: stock, upstream: forward.ServiceA, wantVerb: "GET", wantPath: "/stock/42",
			check: func(t *testing.T, resp proto.Message) {
				if got, want := resp.(*stockv1.GetStockResponse).GetItem().GetProductName(), "tea"; got != want {
					t.Errorf("name = %q, want %q", got, want)
				}
			},
		},
		{
			name: "CreateStock body field", method: "/shop.stock.v1.StockService/CreateStock",
			req:  &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: 1, ProductName: "tea", Quantity: 5, PriceCents: 250}},
			resp: &stockv1.CreateStockResponse{}, body: stock, upstream: forward.ServiceA,
			wantVerb: "POST", wantPath: "/stock", wantBody: `{"product_id":"1","product_name":"tea","quantity":5,"price_cents":"250"}`,
		},
		{
			name: "UpdateStock path and body field", method: "/shop.stock.v1.StockService/UpdateStock",
			req:  &stockv1.UpdateStockRequest{ProductId: 1, Item: &stockv1.StockItem{ProductName: "tea"}},
			resp: &stockv1.UpdateStockResponse{}, body: stock, upstream: forward.ServiceA,
			wantVerb: "PUT", wantPath: "/stock/1", wantBody: `{"product_id":"0","product_name":"tea","quantity":0,"price_cents":"0"}`,
		},
		{
			name: "DeleteStock", method: "/shop.stock.v1.StockService/DeleteStock",
			req: &stockv1.DeleteStockRequest{ProductId: 1}, resp: &stockv1.DeleteStockResponse{}, body: stock,
			upstream: forward.ServiceA, wantVerb: "DELETE", wantPath: "/stock/1",
		},
		{
			name: "SetStockLevel body star keeps zero", method: "/shop.stock.v1.StockService/SetStockLevel",
			req: &stockv1.SetStockLevelRequest{ProductId: 1}, resp: &stockv1.SetStockLevelResponse{}, body: stock,
			upstream: forward.ServiceA, wantVerb: "POST", wantPath: "/stock/update", wantBody: `{"product_id":"1","quantity":0}`,
		},
		{
			name: "AddCartItem", method: "/shop.cart.v1.CartService/AddCartItem",
			req: &cartv1.AddCartItemRequest{UserId: 3, ProductId: 1, Quantity: 2}, resp: &cartv1.AddCartItemResponse{}, body: added,
			upstream: forward.ServiceA, wantVerb: "POST", wantPath: "/cart/add", wantBody: `{"user_id":"3","product_id":"1","quantity":2}`,
			check: func(t *testing.T, resp proto.Message) {
				item := resp.(*cartv1.AddCartItemResponse).GetItem()
				if item.GetItemId() != 7 || item.GetAddedAt().GetSeconds() == 0 {
					t.Errorf("item = %v", item)
				}
			},
		},
		{
			name: "GetFallbackCart", method: "/shop.cart.v1.CartService/GetFallbackCart",
			req: &cartv1.GetFallbackCartRequest{UserId: 3}, resp: &cartv1.GetFallbackCartResponse{}, body: `{"user_id":3,"items":[]}`,
			upstream: forward.ServiceA, wantVerb: "POST", wantPath: "/cart/fallback", wantBody: `{"user_id":"3"}`,
		},
		{
			name: "GetCart query", method: "/shop.cart.v1.CartService/GetCart",
			req: &cartv1.GetCartRequest{UserId: 3}, resp: &cartv1.GetCartResponse{}, body: `{"user_id":3,"items":[` + added + `]}`,
			upstream: forward.ServiceB, wantVerb: "GET", wantPath: "/cart?user_id=3",
		},
		{
			name: "RemoveCartItem", method: "/shop.cart.v1.CartService/RemoveCartItem",
			req: &cartv1.RemoveCartItemRequest{ItemId: 7}, resp: &cartv1.RemoveCartItemResponse{}, body: added,
			upstream: forward.ServiceB, wantVerb: "DELETE", wantPath: "/cart/7",
		},
		{
			name: "ListOrders", method: "/shop.order.v1.OrderService/ListOrders",
			req: &orderv1.ListOrdersRequest{UserId: 3}, resp: &orderv1.ListOrdersResponse{}, body: `{"orders":[` + order + `]}`,
			upstream: forward.ServiceB, wantVerb: "GET", wantPath: "/order?user_id=3",
		},
		{
			name: "GetOrder", method: "/shop.order.v1.OrderService/GetOrder",
			req: &orderv1.GetOrderRequest{OrderId: 9}, resp: &orderv1.GetOrderResponse{}, body: order,
			upstream: forward.ServiceB, wantVerb: "GET", wantPath: "/order/9",
			check: func(t *testing.T, resp proto.Message) {
				o := resp.(*orderv1.GetOrderResponse).GetOrder()
				if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetTotalCents() != 500 {
					t.Errorf("order = %v", o)
				}
			},
		},
		{
			name: "PayOrder", method: "/shop.order.v1.OrderService/PayOrder",
			req: &orderv1.PayOrderRequest{UserId: 3}, resp: &orderv1.PayOrderResponse{}, body: order,
			upstream: forward.ServiceB, wantVerb: "POST", wantPath: "/order/pay", wantBody: `{"user_id":"3"}`,
		},
		{
			name: "ProcessOrderStock", method: "/shop.order.v1.OrderService/ProcessOrderStock",
			req:  &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: 1, Quantity: 2}}},
			resp: &orderv1.ProcessOrderStockResponse{}, body: `{"items":[` + stock + `]}`,
			upstream: forward.ServiceA, wantVerb: "POST", wantPath: "/order/process_stock",
			wantBody: `{"items":[{"product_id":"1","quantity":2}]}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &fakeDoer{name: forward.ServiceA, body: tc.body}
			b := &fakeDoer{name: forward.ServiceB, body: tc.body}
			f := newForwarder(t, a, b)
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-request-id", "rid-1", "traceparent", "00-abc-def-01", "idempotency-key", "key-1"))
			ri := &reqinfo.Info{}
			ctx = reqinfo.NewContext(ctx, ri)
			if err := f.Handle(ctx, tc.method, tc.req, tc.resp); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			d := a
			if tc.upstream == forward.ServiceB {
				d = b
			}
			r := d.last(t)
			if got, want := r.Method, tc.wantVerb; got != want {
				t.Errorf("method = %q, want %q", got, want)
			}
			if got, want := r.Path, tc.wantPath; got != want {
				t.Errorf("path = %q, want %q", got, want)
			}
			if tc.wantBody == "" {
				if len(r.Body) != 0 {
					t.Errorf("body = %s, want none", r.Body)
				}
			} else if got, want := canon(t, string(r.Body)), canon(t, tc.wantBody); got != want {
				t.Errorf("body = %s, want %s", got, want)
			}
			if got, want := r.Header.Get("X-Request-Id"), "rid-1"; got != want {
				t.Errorf("X-Request-Id = %q, want %q", got, want)
			}
			if got, want := r.Header.Get("Traceparent"), "00-abc-def-01"; got != want {
				t.Errorf("traceparent = %q, want %q", got, want)
			}
			if got, want := r.Header.Get("Idempotency-Key"), "key-1"; got != want {
				t.Errorf("Idempotency-Key = %q, want %q", got, want)
			}
			if got, want := ri.Upstream, tc.upstream; got != want {
				t.Errorf("reqinfo upstream = %q, want %q", got, want)
			}
			if tc.check != nil {
				tc.check(t, tc.resp)
			}
		})
	}
}

func canon(tb testing.TB, s string) string {
	tb.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		tb.Fatalf("bad JSON %q: %v", s, err)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func TestUpstreamErrorIsReturned(t *testing.T) {
	t.Parallel()
	a := &fakeDoer{name: forward.ServiceA, err: status.Error(codes.NotFound, "product 9 not found")}
	f := newForwarder(t, a, &fakeDoer{name: forward.ServiceB})
	err := f.Handle(context.Background(), "/shop.stock.v1.StockService/GetStock", &stockv1.GetStockRequest{ProductId: 9}, &stockv1.GetStockResponse{})
	if got, want := status.Code(err), codes.NotFound; got != want {
		t.Fatalf("code = %v, want %v", got, want)
	}
}

func TestInvalidUpstreamJSONIsInternal(t *testing.T) {
	t.Parallel()
	a := &fakeDoer{name: forward.ServiceA, body: `{"product_id":"not a number"}`}
	f := newForwarder(t, a, &fakeDoer{name: forward.ServiceB})
	err := f.Handle(context.Background(), "/shop.stock.v1.StockService/GetStock", &stockv1.GetStockRequest{ProductId: 1}, &stockv1.GetStockResponse{})
	if got, want := status.Code(err), codes.Internal; got != want {
		t.Fatalf("code = %v, want %v", got, want)
	}
}

func TestGetCartFallsBackToServiceA(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		errB         error
		wantFallback bool
		wantCode     codes.Code
	}{
		{"B unavailable", status.Error(codes.Unavailable, "service_b unavailable"), true, codes.OK},
		{"B too slow", status.Error(codes.DeadlineExceeded, "service_b timed out"), true, codes.OK},
		{"B 5xx", status.Error(codes.Internal, "boom"), true, codes.OK},
		{"B says bad request", status.Error(codes.InvalidArgument, "user_id must be positive"), false, codes.InvalidArgument},
		{"B fine", nil, false, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &fakeDoer{name: forward.ServiceA, body: `{"user_id":3,"items":[{"item_id":1,"user_id":3,"product_id":5,"quantity":1}]}`}
			b := &fakeDoer{name: forward.ServiceB, body: `{"user_id":3,"items":[]}`, err: tc.errB}
			f := newForwarder(t, a, b)
			ri := &reqinfo.Info{}
			ctx := reqinfo.NewContext(context.Background(), ri)
			resp := &cartv1.GetCartResponse{}
			err := f.Handle(ctx, "/shop.cart.v1.CartService/GetCart", &cartv1.GetCartRequest{UserId: 3}, resp)
			if got, want := status.Code(err), tc.wantCode; got != want {
				t.Fatalf("code = %v, want %v", got, want)
			}
			if got, want := ri.Fallback, tc.wantFallback; got != want {
				t.Errorf("fallback = %v, want %v", got, want)
			}
			if tc.wantFallback {
				if got, want := a.last(t).Path, "/cart/fallback"; got != want {
					t.Errorf("fallback path = %q, want %q", got, want)
				}
				if got, want := len(resp.GetItems()), 1; got != want {
					t.Errorf("items = %d, want %d", got, want)
				}
				if got, want := resp.GetUserId(), int64(3); got != want {
					t.Errorf("user_id = %d, want %d", got, want)
				}
			}
		})
	}
}

func TestFallbackFailureReturnsPrimaryError(t *testing.T) {
	t.Parallel()
	a := &fakeDoer{name: forward.ServiceA, err: status.Error(codes.Unavailable, "service_a unavailable")}
	b := &fakeDoer{name: forward.ServiceB, err: status.Error(codes.Unavailable, "service_b unavailable")}
	f := newForwarder(t, a, b)
	err := f.Handle(context.Background(), "/shop.cart.v1.CartService/GetCart", &cartv1.GetCartRequest{UserId: 3}, &cartv1.GetCartResponse{})
	if got, want := status.Convert(err).Message(), "service_b unavailable"; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}
