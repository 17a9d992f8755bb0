package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/ratelimit"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

func shopServices() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		stockv1.File_shop_stock_v1_stock_proto.Services().ByName("StockService"),
		cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
		orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
	}
}

// recStream records the header metadata an interceptor sets.
type recStream struct {
	mu sync.Mutex
	md metadata.MD
}

func (s *recStream) Method() string { return "" }
func (s *recStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	s.md = metadata.Join(s.md, md)
	s.mu.Unlock()
	return nil
}
func (s *recStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *recStream) SetTrailer(metadata.MD) error    { return nil }

// call runs the interceptor for one RPC and reports whether the handler was
// reached, with what request and caller.
type callResult struct {
	err    error
	called bool
	req    proto.Message
	caller *reqinfo.Caller
	header metadata.MD
}

func callRPC(a *Authorizer, method string, req proto.Message, authorization string) callResult {
	ctx := context.Background()
	if authorization != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(AuthorizationKey, authorization))
	}
	st := &recStream{}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	ctx = reqinfo.NewContext(ctx, &reqinfo.Info{ClientIP: "192.0.2.1"})
	var res callResult
	_, res.err = a.Interceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
		res.called, res.req, res.caller = true, req.(proto.Message), reqinfo.CallerFrom(ctx)
		return nil, nil
	})
	res.header = st.md
	return res
}

func newTestAuthorizer(tb testing.TB, v TokenVerifier, lim Limiter) *Authorizer {
	tb.Helper()
	a, err := NewAuthorizer(AuthorizerConfig{Services: shopServices(), Verifier: v, Limiter: lim, Open: []string{mHealth}, Logger: discard()})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

const (
	mGetStock    = "/shop.stock.v1.StockService/GetStock"
	mCreateStock = "/shop.stock.v1.StockService/CreateStock"
	mAddCartItem = "/shop.cart.v1.CartService/AddCartItem"
	mRemoveItem  = "/shop.cart.v1.CartService/RemoveCartItem"
	mProcess     = "/shop.order.v1.OrderService/ProcessOrderStock"
	mListOrders  = "/shop.order.v1.OrderService/ListOrders"
	mHealth      = "/grpc.health.v1.Health/Check"
)

func TestAuthorizer(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	a := newTestAuthorizer(t, newTestVerifier(t, k, nil), nil)
	bearer := func(sub, scope string) string { return "Bearer " + sign(t, k.signer, claims(sub, scope)) }
	user, other, admin, service := bearer("7", ""), bearer("8", ""), bearer("1", "shop:admin"), bearer("2", "shop:service")
	expired := claims("7", "")
	expired.Expiry = time.Now().Add(-time.Hour)

	tests := []struct {
		name      string
		method    string
		req       proto.Message
		auth      string
		want      codes.Code
		wantOwner int64  // for AddCartItem: user_id the handler saw
		challenge string // part of the WWW-Authenticate metadata
	}{
		{"public anonymous", mGetStock, &stockv1.GetStockRequest{ProductId: 1}, "", codes.OK, 0, ""},
		{"public user", mGetStock, &stockv1.GetStockRequest{ProductId: 1}, user, codes.OK, 0, ""},
		{"public bad token", mGetStock, &stockv1.GetStockRequest{ProductId: 1}, "Bearer x.y.z", codes.Unauthenticated, 0, `error="invalid_token"`},
		{"owner anonymous", mAddCartItem, &cartv1.AddCartItemRequest{ProductId: 1, Quantity: 1}, "", codes.Unauthenticated, 0, `Bearer realm="shop"`},
		{"owner malformed header", mAddCartItem, &cartv1.AddCartItemRequest{ProductId: 1, Quantity: 1}, "Basic dXNlcjpwdw==", codes.Unauthenticated, 0, `error="invalid_token"`},
		{"owner empty bearer", mAddCartItem, &cartv1.AddCartItemRequest{ProductId: 1, Quantity: 1}, "Bearer ", codes.Unauthenticated, 0, `error="invalid_token"`},
		{"owner expired", mAddCartItem, &cartv1.AddCartItemRequest{ProductId: 1, Quantity: 1}, "Bearer " + sign(t, k.signer, expired), codes.Unauthenticated, 0, "expired"},
		{"owner filled from sub", mAddCartItem, &cartv1.AddCartItemRequest{ProductId: 1, Quantity: 1}, user, codes.OK, 7, ""},
		{"owner same user", mAddCartItem, &cartv1.AddCartItemRequest{UserId: 7, ProductId: 1, Quantity: 1}, user, codes.OK, 7, ""},
		{"owner other user", mAddCartItem, &cartv1.AddCartItemRequest{UserId: 7, ProductId: 1, Quantity: 1}, other, codes.PermissionDenied, 0, ""},
		{"owner admin for another", mAddCartItem, &cartv1.AddCartItemRequest{UserId: 7, ProductId: 1, Quantity: 1}, admin, codes.OK, 7, ""},
		{"owner service for another", mAddCartItem, &cartv1.AddCartItemRequest{UserId: 7, ProductId: 1, Quantity: 1}, service, codes.PermissionDenied, 0, ""},
		{"owner list own orders", mListOrders, &orderv1.ListOrdersRequest{UserId: 7}, user, codes.OK, 0, ""},
		{"owner list orders from sub", mListOrders, &orderv1.ListOrdersRequest{}, user, codes.OK, 0, ""},
		{"owner list another's orders", mListOrders, &orderv1.ListOrdersRequest{UserId: 7}, other, codes.PermissionDenied, 0, ""},
		{"owner list orders anonymous", mListOrders, &orderv1.ListOrdersRequest{UserId: 7}, "", codes.Unauthenticated, 0, ""},
		{"owner by id anonymous", mRemoveItem, &cartv1.RemoveCartItemRequest{ItemId: 5}, "", codes.Unauthenticated, 0, ""},
		{"owner by id user", mRemoveItem, &cartv1.RemoveCartItemRequest{ItemId: 5}, other, codes.OK, 0, ""},
		{"admin anonymous", mCreateStock, &stockv1.CreateStockRequest{}, "", codes.Unauthenticated, 0, ""},
		{"admin user", mCreateStock, &stockv1.CreateStockRequest{}, user, codes.PermissionDenied, 0, `error="insufficient_scope"`},
		{"admin service", mCreateStock, &stockv1.CreateStockRequest{}, service, codes.PermissionDenied, 0, ""},
		{"admin admin", mCreateStock, &stockv1.CreateStockRequest{}, admin, codes.OK, 0, ""},
		{"internal user", mProcess, &orderv1.ProcessOrderStockRequest{}, user, codes.PermissionDenied, 0, ""},
		{"internal service", mProcess, &orderv1.ProcessOrderStockRequest{}, service, codes.OK, 0, ""},
		{"internal admin", mProcess, &orderv1.ProcessOrderStockRequest{}, admin, codes.OK, 0, ""},
		{"unknown method", "/shop.x.v1.X/Y", &stockv1.GetStockRequest{}, admin, codes.PermissionDenied, 0, ""},
		{"open method anonymous", mHealth, &stockv1.GetStockRequest{}, "", codes.OK, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := callRPC(a, tt.method, tt.req, tt.auth)
			if got := status.Code(res.err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, res.err, tt.want)
			}
			if got, want := res.called, tt.want == codes.OK; got != want {
				t.Fatalf("handler called %v, want %v", got, want)
			}
			if tt.challenge != "" {
				if got := strings.Join(res.header.Get(ChallengeKey), " | "); !strings.Contains(got, tt.challenge) {
					t.Errorf("www-authenticate %q, want it to contain %q", got, tt.challenge)
				}
			}
			if tt.wantOwner != 0 {
				if got := res.req.(*cartv1.AddCartItemRequest).GetUserId(); got != tt.wantOwner {
					t.Errorf("handler saw user_id %d, want %d", got, tt.wantOwner)
				}
			}
			if res.called && tt.auth != "" && res.caller == nil {
				t.Errorf("handler saw no caller for an authenticated call")
			}
		})
	}
}

func TestAuthorizerDisabled(t *testing.T) {
	t.Parallel()
	a := newTestAuthorizer(t, nil, nil)
	res := callRPC(a, mCreateStock, &stockv1.CreateStockRequest{}, "Bearer whatever")
	if res.err != nil || !res.called || res.caller != nil {
		t.Errorf("disabled: err %v, called %v, caller %v; want through, anonymous", res.err, res.called, res.caller)
	}
}

func TestAuthorizerRateLimit(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	lim, err := ratelimit.New(ratelimit.Config{Rate: 0.001, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAuthorizer(t, newTestVerifier(t, k, nil), lim)
	user := "Bearer " + sign(t, k.signer, claims("7", ""))
	for i := range 2 {
		if res := callRPC(a, mGetStock, &stockv1.GetStockRequest{}, user); res.err != nil {
			t.Fatalf("call %d: %v", i, res.err)
		}
	}
	res := callRPC(a, mGetStock, &stockv1.GetStockRequest{}, user)
	st := status.Convert(res.err)
	if got, want := st.Code(), codes.ResourceExhausted; got != want {
		t.Fatalf("third call: %v, want %v", res.err, want)
	}
	if res.called {
		t.Error("handler called over the limit")
	}
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.GetRetryDelay().AsDuration() < time.Second {
		t.Errorf("details %v, want a RetryInfo of at least 1s", st.Details())
	}
	for _, key := range []string{RetryAfterKey, RateLimitPolicyKey, RateLimitKey} {
		if len(res.header.Get(key)) == 0 {
			t.Errorf("no %s metadata on the 429", key)
		}
	}
	// Another client (anonymous, by address) is served.
	if res := callRPC(a, mGetStock, &stockv1.GetStockRequest{}, ""); res.err != nil {
		t.Errorf("another client: %v, want served", res.err)
	}
}

func TestCompileRules(t *testing.T) {
	t.Parallel()
	rules, err := compileRules(shopServices())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rules), 17; got != want { // 14 unary RPCs and 3 Watch streams
		t.Errorf("%d rules, want %d (one per RPC)", got, want)
	}
}
