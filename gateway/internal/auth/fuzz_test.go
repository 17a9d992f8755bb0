package auth

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// FuzzAuthorize feeds arbitrary Authorization headers and owners through the
// token parser and the authorization path. It must never panic, never
// accept a token the seeds did not sign (the fuzzer cannot forge a
// signature), and never let a call through that the policy denies.
func FuzzAuthorize(f *testing.F) {
	k := newTestKeys(f)
	v := newTestVerifier(f, k, nil)
	a := newTestAuthorizer(f, v, nil)
	valid := map[int64]string{7: "", 1: "shop:admin", 2: "shop:service"}
	for sub, scope := range valid {
		c := claims(string(rune('0'+sub)), scope)
		tok := sign(f, k.signer, c)
		f.Add("Bearer "+tok, int64(0), uint8(sub))
		f.Add("Bearer "+tamper(tok), int64(7), uint8(1))
		f.Add("bearer  "+tok+" ", int64(8), uint8(2))
	}
	f.Add("Bearer "+unsigned(f, k.signer.KeyID(), claims("1", "shop:admin")), int64(0), uint8(3))
	f.Add("Bearer "+hmacWithPublicKey(f, k.signer, claims("1", "shop:admin")), int64(0), uint8(3))
	f.Add("Bearer e30.e30.", int64(-1), uint8(0))
	f.Add("", int64(7), uint8(1))

	f.Fuzz(func(t *testing.T, authorization string, owner int64, which uint8) {
		var (
			method string
			req    proto.Message
		)
		switch which % 4 {
		case 0:
			method, req = mGetStock, &stockv1.GetStockRequest{ProductId: 1}
		case 1:
			method, req = mAddCartItem, &cartv1.AddCartItemRequest{UserId: owner, ProductId: 1, Quantity: 1}
		case 2:
			method, req = mCreateStock, &stockv1.CreateStockRequest{}
		default:
			method, req = mProcess, &orderv1.ProcessOrderStockRequest{}
		}
		res := callRPC(a, method, req, authorization)
		if res.caller != nil {
			scope, ok := valid[res.caller.UserID]
			if !ok || res.caller.Scopes != scope {
				t.Fatalf("accepted a token the seeds did not sign: caller %+v", res.caller)
			}
		}
		if !res.called {
			return
		}
		switch which % 4 {
		case 1:
			if res.caller == nil {
				t.Fatal("owner call let through anonymously")
			}
			got := res.req.(*cartv1.AddCartItemRequest).GetUserId()
			if got != res.caller.UserID && res.caller.Scopes != "shop:admin" {
				t.Fatalf("user %d acted for user %d without shop:admin", res.caller.UserID, got)
			}
		case 2:
			if res.caller == nil || res.caller.Scopes != "shop:admin" {
				t.Fatalf("admin call let through for %+v", res.caller)
			}
		case 3:
			if res.caller == nil || !slices.Contains([]string{"shop:admin", "shop:service"}, res.caller.Scopes) {
				t.Fatalf("internal call let through for %+v", res.caller)
			}
		}
	})
}
