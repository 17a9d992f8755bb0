package forward_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// claimsOf verifies the assertion of req with pub and returns its claims.
func claimsOf(t *testing.T, req *upstream.Request, pub jwk.Key) jwt.Token {
	t.Helper()
	values := req.Header.Values(svcid.Header)
	if len(values) != 1 {
		t.Fatalf("%s %s: %d assertions, want 1 (headers %v)", req.Method, req.Path, len(values), req.Header)
	}
	tok, err := jwt.Parse([]byte(values[0]), jwt.WithKey(jwa.EdDSA(), pub), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	return tok
}

func checkClaims(t *testing.T, tok jwt.Token, aud, sub, scope string) {
	t.Helper()
	gotAud, _ := tok.Audience()
	gotSub, _ := tok.Subject()
	gotIss, _ := tok.Issuer()
	var gotScope string
	_ = tok.Get("scope", &gotScope)
	if len(gotAud) != 1 || gotAud[0] != aud || gotSub != sub || gotScope != scope || gotIss != "shop-gateway" {
		t.Errorf("claims aud=%v sub=%q scope=%q iss=%q, want aud=[%s] sub=%q scope=%q iss=shop-gateway", gotAud, gotSub, gotScope, gotIss, aud, sub, scope)
	}
	iat, _ := tok.IssuedAt()
	exp, _ := tok.Expiration()
	if life := exp.Sub(iat); life <= 0 || life > svcid.DefaultTTL {
		t.Errorf("assertion lives %s, want at most %s", life, svcid.DefaultTTL)
	}
}

// Every upstream call carries one assertion for the owning service: the
// caller's identity, else the gateway's own without scopes; a client's
// X-User-Id or X-Auth-Scopes never reaches a service.
func TestEveryCallCarriesASignedIdentity(t *testing.T) {
	t.Parallel()
	signer, pub, err := svcid.Generate("shop-gateway")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeDoer{name: forward.ServiceA, body: `{"product_id":1,"product_name":"tea","quantity":5,"price_cents":250}`}
	b := &fakeDoer{name: forward.ServiceB, body: `{"user_id":7,"items":[]}`}
	f, err := forward.New(app.Services(), forward.DefaultTable, map[string]forward.Doer{forward.ServiceA: a, forward.ServiceB: b}, forward.Options{Asserter: signer})
	if err != nil {
		t.Fatal(err)
	}
	spoof := metadata.Pairs("x-user-id", "1", "x-auth-scopes", "shop:admin", "x-identity-assertion", "forged")
	ctx := metadata.NewIncomingContext(context.Background(), spoof)

	if err := f.Handle(ctx, "/shop.stock.v1.StockService/GetStock", &stockv1.GetStockRequest{ProductId: 1}, &stockv1.GetStockResponse{}); err != nil {
		t.Fatal(err)
	}
	anon := a.last(t)
	checkClaims(t, claimsOf(t, anon, pub), forward.ServiceA, "svc:shop-gateway", "")

	userCtx := reqinfo.WithCaller(ctx, &reqinfo.Caller{UserID: 7, Scopes: "openid shop:service"})
	if err := f.Handle(userCtx, "/shop.cart.v1.CartService/GetCart", &cartv1.GetCartRequest{UserId: 7}, &cartv1.GetCartResponse{}); err != nil {
		t.Fatal(err)
	}
	user := b.last(t)
	checkClaims(t, claimsOf(t, user, pub), forward.ServiceB, "7", "openid shop:service")
	for _, req := range []*upstream.Request{anon, user} {
		for _, h := range []string{"X-User-Id", "X-Auth-Scopes"} {
			if v := req.Header.Values(h); len(v) > 0 {
				t.Errorf("%s %s carries %s %v", req.Method, req.Path, h, v)
			}
		}
	}

	// The idempotency lookup is the gateway's own internal call, asking
	// about the user's request.
	b.body = `{"state":"unknown"}`
	state, err := f.Lookup(userCtx, "/shop.cart.v1.CartService/RemoveCartItem", &cartv1.RemoveCartItemRequest{ItemId: 3}, "k1", &cartv1.RemoveCartItemResponse{})
	if err != nil || state != forward.LookupUnknown {
		t.Fatalf("lookup = %q, %v", state, err)
	}
	lookup := b.last(t)
	checkClaims(t, claimsOf(t, lookup, pub), forward.ServiceB, "svc:shop-gateway", svcid.ServiceScope)
	if want := `"caller":"7"`; !strings.Contains(string(lookup.Body), want) {
		t.Errorf("lookup body %s does not name the caller (%s)", lookup.Body, want)
	}
}
