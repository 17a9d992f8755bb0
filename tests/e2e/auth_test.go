package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shopgateway/shop/gateway/devkeys"
	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// badTokens are the tokens every protected RPC refuses with 401, and every
// RPC (public ones too) refuses when they are sent: each fails one check.
func badTokens(tb testing.TB, user int64) map[string]string {
	tb.Helper()
	good := harness.Sign(tb, harness.Claims(user, ""))
	with := func(f func(*devkeys.Claims)) string {
		c := harness.Claims(user, "")
		f(&c)
		return harness.Sign(tb, c)
	}
	hmac, err := harness.Signer(tb).HMACWithPublicKey(harness.Claims(user, harness.ScopeAdmin))
	if err != nil {
		tb.Fatal(err)
	}
	stranger, err := devkeys.Generate("ES256", "not-in-the-jwks")
	if err != nil {
		tb.Fatal(err)
	}
	unknownKID, err := stranger.Token(harness.Claims(user, harness.ScopeAdmin))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	return map[string]string{
		"malformed":              "not-a-jwt",
		"bad signature":          devkeys.Tamper(good),
		"alg none":               devkeys.Unsigned(harness.Signer(tb).KeyID(), harness.Claims(user, harness.ScopeAdmin)),
		"HMAC keyed with public": hmac,
		"expired":                with(func(c *devkeys.Claims) { c.IssuedAt, c.Expiry = now.Add(-2*time.Hour), now.Add(-time.Hour) }),
		"nbf in the future":      with(func(c *devkeys.Claims) { c.NotBefore = now.Add(time.Hour) }),
		"wrong issuer":           with(func(c *devkeys.Claims) { c.Issuer = "https://evil.test" }),
		"wrong audience":         with(func(c *devkeys.Claims) { c.Audience = "another-api" }),
		"unknown kid":            unknownKID,
	}
}

// authCall is one RPC made over REST and over gRPC with a given token.
type authCall struct {
	name string
	// REST request.
	method, path, body string
	// gRPC call.
	grpc func(ctx context.Context, c clients) error
}

// restWith calls the gateway over REST with token ("" sends none) and a
// request id to find the call by.
func restWith(tb testing.TB, s *harness.Stack, call authCall, token, requestID string) (int, http.Header, map[string]any) {
	tb.Helper()
	auth := ""
	if token != "" {
		auth = harness.Bearer(token)
	}
	return s.Do(tb, call.method, call.path, call.body, "Authorization", auth, "X-Request-Id", requestID)
}

// grpcWith calls the gateway over gRPC with token ("" sends none) and a
// request id.
func grpcWith(tb testing.TB, c clients, call authCall, token, requestID string) error {
	tb.Helper()
	ctx := harness.NoToken(rpcCtx(tb))
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", requestID)
	if token != "" {
		ctx = harness.WithToken(ctx, token)
	}
	return call.grpc(ctx, c)
}

// serviceCalls counts the API calls the services logged (uvicorn's access
// lines for /stock, /cart and /order), to show that a denial reached none.
func serviceCalls(tb testing.TB, s *harness.Stack) int {
	tb.Helper()
	n := 0
	for _, name := range []string{"service_a.log", "service_b.log"} {
		data, err := os.ReadFile(filepath.Join(s.Dir(), name))
		if err != nil {
			tb.Fatalf("reading %s: %v", name, err)
		}
		n += len(apiLine.FindAll(data, -1))
	}
	return n
}

// settledCalls is serviceCalls once the count has stopped changing: the
// services write their access lines off the request path, a little later.
func settledCalls(tb testing.TB, s *harness.Stack) int {
	tb.Helper()
	last := serviceCalls(tb, s)
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		n := serviceCalls(tb, s)
		if n == last {
			return n
		}
		last = n
	}
	tb.Fatalf("the services' access logs kept growing for 15s")
	return 0
}

var apiLine = regexp.MustCompile(`"(GET|POST|PUT|DELETE|PATCH) /(stock|cart|order)[^"]* HTTP/1\.1"`)

// TestAuthMatrix sends the token matrix of the edge-security contract to
// every RPC over REST and gRPC: bad tokens are 401 with a Bearer challenge
// (error="invalid_token"), no token 401 on protected RPCs, a good token
// without the right 403 (or 404 from the owning service for another user's
// cart item or order), and the right token succeeds. For every denial the
// services saw no call, the state read back is unchanged and no event
// carries the denied request's id.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	reader := harness.NewEventReader(t, harness.TopicStock, harness.TopicCart, harness.TopicOrder)
	c := newClients(t, s)
	owner, other := newID(), newID()
	ownerTok := s.Token(t, owner, "")
	otherTok := s.Token(t, other, "")
	adminTok := s.Token(t, newID(), harness.ScopeAdmin)
	serviceTok := s.Token(t, newID(), harness.ScopeService)

	// State the denials aim at: a product, the owner's cart item and order.
	target := createProduct(t, s, "target", 50, 100)
	stock := createProduct(t, s, "stock", 1000, 10)
	ownerAuth := "Bearer " + ownerTok
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, stock), "Authorization", ownerAuth)
	waitCart(t, s, owner, 1)
	_, paid := do(t, s, http.StatusOK, "POST", "/order/pay", `{}`, "Authorization", ownerAuth)
	orderID, _ := paid["order_id"].(string)
	_, added := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":2}`, stock), "Authorization", ownerAuth)
	itemID, _ := added["item_id"].(string)
	if orderID == "" || itemID == "" {
		t.Fatalf("setup: order %v, item %v", paid, added)
	}
	waitCart(t, s, owner, 1)
	var oid, iid int64
	fmt.Sscan(orderID, &oid)
	fmt.Sscan(itemID, &iid)

	// snapshot reads back everything a denied call could have changed.
	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{"/stock/" + str(target), "/cart/fallback/" + str(owner), "/cart/" + str(owner),
			"/order?user_id=" + str(owner), "/stock/" + str(target+1000)} {
			st, _, m := s.Do(t, "GET", p, "")
			delete(m, "next_page_token")
			fmt.Fprintf(&b, "%s %d %v\n", p, st, m)
		}
		return b.String()
	}

	calls := map[string][]authCall{
		"public": {
			{"ListStock", "GET", "/stock?page_size=1", "", func(ctx context.Context, c clients) error {
				_, err := c.stock.ListStock(ctx, &stockv1.ListStockRequest{PageSize: 1})
				return err
			}},
			{"GetStock", "GET", "/stock/" + str(target), "", func(ctx context.Context, c clients) error {
				_, err := c.stock.GetStock(ctx, &stockv1.GetStockRequest{ProductId: target})
				return err
			}},
		},
		"owner": {
			{"AddCartItem", "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, owner, stock), func(ctx context.Context, c clients) error {
				_, err := c.cart.AddCartItem(ctx, &cartv1.AddCartItemRequest{UserId: owner, ProductId: stock, Quantity: 1})
				return err
			}},
			{"GetFallbackCart", "GET", "/cart/fallback/" + str(owner), "", func(ctx context.Context, c clients) error {
				_, err := c.cart.GetFallbackCart(ctx, &cartv1.GetFallbackCartRequest{UserId: owner})
				return err
			}},
			{"GetCart", "GET", "/cart?user_id=" + str(owner), "", func(ctx context.Context, c clients) error {
				_, err := c.cart.GetCart(ctx, &cartv1.GetCartRequest{UserId: owner})
				return err
			}},
			{"ListOrders", "GET", "/order?user_id=" + str(owner), "", func(ctx context.Context, c clients) error {
				_, err := c.order.ListOrders(ctx, &orderv1.ListOrdersRequest{UserId: owner})
				return err
			}},
			{"PayOrder", "POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, owner), func(ctx context.Context, c clients) error {
				_, err := c.order.PayOrder(ctx, &orderv1.PayOrderRequest{UserId: owner})
				return err
			}},
		},
		// Addressed by the resource's own id: the owning service answers 404
		// for another user's.
		"owner by id": {
			{"RemoveCartItem", "DELETE", "/cart/" + itemID, "", func(ctx context.Context, c clients) error {
				_, err := c.cart.RemoveCartItem(ctx, &cartv1.RemoveCartItemRequest{ItemId: iid})
				return err
			}},
			{"GetOrder", "GET", "/order/" + orderID, "", func(ctx context.Context, c clients) error {
				_, err := c.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: oid})
				return err
			}},
		},
		"admin": {
			{"CreateStock", "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":1,"price_cents":1}`, target+1000), func(ctx context.Context, c clients) error {
				_, err := c.stock.CreateStock(ctx, &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: target + 1000, ProductName: "x", Quantity: 1, PriceCents: 1}})
				return err
			}},
			{"UpdateStock", "PUT", "/stock/" + str(target), `{"product_name":"hacked","quantity":1,"price_cents":1}`, func(ctx context.Context, c clients) error {
				_, err := c.stock.UpdateStock(ctx, &stockv1.UpdateStockRequest{ProductId: target, Item: &stockv1.StockItem{ProductName: "hacked", Quantity: 1, PriceCents: 1}})
				return err
			}},
			{"DeleteStock", "DELETE", "/stock/" + str(target), "", func(ctx context.Context, c clients) error {
				_, err := c.stock.DeleteStock(ctx, &stockv1.DeleteStockRequest{ProductId: target})
				return err
			}},
			{"SetStockLevel", "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":0}`, target), func(ctx context.Context, c clients) error {
				_, err := c.stock.SetStockLevel(ctx, &stockv1.SetStockLevelRequest{ProductId: target, Quantity: 0})
				return err
			}},
		},
		"internal": {
			{"ProcessOrderStock", "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":50}]}`, target), func(ctx context.Context, c clients) error {
				_, err := c.order.ProcessOrderStock(ctx, &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: target, Quantity: 50}}})
				return err
			}},
		},
	}

	// The denials of each class: token name -> (token, HTTP status, code).
	type denial struct {
		token  string
		status int
		code   codes.Code
	}
	denials := map[string]map[string]denial{}
	for class := range calls {
		d := map[string]denial{}
		for name, tok := range badTokens(t, owner) {
			d[name] = denial{tok, http.StatusUnauthorized, codes.Unauthenticated}
		}
		if class != "public" {
			d["no token"] = denial{"", http.StatusUnauthorized, codes.Unauthenticated}
		}
		switch class {
		case "owner":
			d["other user"] = denial{otherTok, http.StatusForbidden, codes.PermissionDenied}
			d["service"] = denial{serviceTok, http.StatusForbidden, codes.PermissionDenied}
		case "owner by id":
			d["other user"] = denial{otherTok, http.StatusNotFound, codes.NotFound}
			d["service"] = denial{serviceTok, http.StatusNotFound, codes.NotFound}
		case "admin":
			d["owner"] = denial{ownerTok, http.StatusForbidden, codes.PermissionDenied}
			d["service"] = denial{serviceTok, http.StatusForbidden, codes.PermissionDenied}
		case "internal":
			d["owner"] = denial{ownerTok, http.StatusForbidden, codes.PermissionDenied}
			d["other user"] = denial{otherTok, http.StatusForbidden, codes.PermissionDenied}
		}
		denials[class] = d
	}

	before := snapshot()
	callsBefore := settledCalls(t, s)
	var denied []string // request ids
	var serviceAnswered int
	t.Run("denials", func(t *testing.T) {
		n := 0
		for class, cs := range calls {
			for _, call := range cs {
				for name, d := range denials[class] {
					n++
					rid := fmt.Sprintf("deny-%d-%d", owner, n)
					denied = append(denied, rid, rid+"-g")
					if d.status == http.StatusNotFound {
						serviceAnswered += 2 // the owning service answers these itself
					}
					t.Run(fmt.Sprintf("%s/%s/%s/REST", class, call.name, name), func(t *testing.T) {
						got, h, body := restWith(t, s, call, d.token, rid)
						wantStatusBody(t, "denied", got, body, d.status, d.code)
						if d.status == http.StatusUnauthorized {
							ch := h.Values("WWW-Authenticate")
							if len(ch) != 1 || !strings.HasPrefix(ch[0], "Bearer ") {
								t.Errorf("WWW-Authenticate %q, want one Bearer challenge", ch)
							}
							if invalid := strings.Contains(strings.Join(ch, ""), `error="invalid_token"`); invalid != (d.token != "") {
								t.Errorf("WWW-Authenticate %q: error=\"invalid_token\" is %v, want %v (a token was sent: %v)", ch, invalid, d.token != "", d.token != "")
							}
						}
					})
					t.Run(fmt.Sprintf("%s/%s/%s/gRPC", class, call.name, name), func(t *testing.T) {
						err := grpcWith(t, c, call, d.token, rid+"-g")
						if got := status.Code(err); got != d.code {
							t.Errorf("code %v (%v), want %v", got, err, d.code)
						}
					})
				}
			}
		}
	})
	t.Run("nothing changed", func(t *testing.T) {
		if got := settledCalls(t, s) - callsBefore; got != serviceAnswered {
			t.Errorf("the services logged %d API calls during the denials, want %d (only the 404s they answer themselves)", got, serviceAnswered)
		}
		if after := snapshot(); after != before {
			t.Errorf("state changed by denied calls:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		adminAuth, serviceAuth := "Bearer "+adminTok, "Bearer "+serviceTok
		for _, tok := range []string{"", ownerTok, otherTok, adminTok, serviceTok} {
			for _, call := range calls["public"] {
				if got, _, body := restWith(t, s, call, tok, "ok-public"); got != http.StatusOK {
					t.Errorf("%s REST: %d %v, want 200", call.name, got, body)
				}
				if err := grpcWith(t, c, call, tok, "ok-public-g"); err != nil {
					t.Errorf("%s gRPC: %v, want success", call.name, err)
				}
			}
		}
		// The owner, with user_id left out: filled from the token.
		_, m := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, stock), "Authorization", ownerAuth)
		wantInt64(t, "added without user_id", m, "user_id", owner)
		item := ok(c.cart.AddCartItem(harness.WithToken(rpcCtx(t), ownerTok), &cartv1.AddCartItemRequest{ProductId: stock, Quantity: 1}))(t, "AddCartItem").GetItem()
		if item.GetUserId() != owner {
			t.Errorf("gRPC AddCartItem without user_id: user %d, want %d", item.GetUserId(), owner)
		}
		_, m = do(t, s, http.StatusOK, "GET", "/order", "", "Authorization", ownerAuth)
		if orders := list(t, m, "orders"); len(orders) != 1 || orders[0]["order_id"] != orderID {
			t.Errorf("GET /order as the owner = %v, want the owner's order %s", orders, orderID)
		}
		for _, call := range append(calls["owner by id"][1:], calls["owner"][1:4]...) {
			if got, _, body := restWith(t, s, call, ownerTok, "ok-owner"); got != http.StatusOK {
				t.Errorf("%s REST as the owner: %d %v, want 200", call.name, got, body)
			}
			if err := grpcWith(t, c, call, ownerTok, "ok-owner-g"); err != nil {
				t.Errorf("%s gRPC as the owner: %v", call.name, err)
			}
			if got, _, body := restWith(t, s, call, adminTok, "ok-admin"); got != http.StatusOK {
				t.Errorf("%s REST as an admin: %d %v, want 200", call.name, got, body)
			}
		}
		do(t, s, http.StatusOK, "DELETE", "/cart/"+itemID, "", "Authorization", ownerAuth)
		do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":49}`, target), "Authorization", adminAuth)
		do(t, s, http.StatusOK, "POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1}]}`, target), "Authorization", serviceAuth)
		if got, want := stockOf(t, s, target), 48; got != want {
			t.Errorf("stock after the admin's set and the service's decrement = %d, want %d", got, want)
		}
	})

	t.Run("no events of denials", func(t *testing.T) {
		// The allowed decrement's event comes after every denial: once it is
		// read, a denial's event would have been too.
		reader.WaitMatching(t, 1, syncTimeout, func(e harness.Event) bool {
			return e.Type() == "shop.events.v1.StockProcessed" && e.Key == str(target)
		})
		ids := map[string]bool{}
		for _, id := range denied {
			ids[id] = true
		}
		for _, e := range reader.Events() {
			if ids[e.Headers["x-request-id"]] {
				t.Errorf("event of a denied call: %v", e)
			}
		}
	})
}

// TestSpoofedIdentity: X-User-Id and X-Auth-Scopes sent by a client never
// reach a service: with them, another user still cannot remove the owner's
// cart item (the service sees the caller's real id and answers 404).
func TestSpoofedIdentity(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	owner, other := newID(), newID()
	product := createProduct(t, s, "spoofed", 10, 1)
	_, m := do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, product),
		"Authorization", harness.Bearer(s.Token(t, owner, "")))
	itemID, _ := m["item_id"].(string)
	waitCart(t, s, owner, 1)
	otherAuth := harness.Bearer(s.Token(t, other, ""))
	spoof := []string{"X-User-Id", str(owner), "X-Auth-Scopes", harness.ScopeAdmin,
		"Grpc-Metadata-X-User-Id", str(owner), "Grpc-Metadata-X-Auth-Scopes", harness.ScopeAdmin}
	got, _, body := s.Do(t, "DELETE", "/cart/"+itemID, "", append([]string{"Authorization", otherAuth}, spoof...)...)
	wantStatusBody(t, "DELETE another user's item with spoofed identity headers", got, body, http.StatusNotFound, codes.NotFound)

	c := newClients(t, s)
	var iid int64
	fmt.Sscan(itemID, &iid)
	ctx := metadata.AppendToOutgoingContext(harness.WithToken(rpcCtx(t), s.Token(t, other, "")),
		"x-user-id", str(owner), "x-auth-scopes", harness.ScopeAdmin)
	_, err := c.cart.RemoveCartItem(ctx, &cartv1.RemoveCartItemRequest{ItemId: iid})
	wantCode(t, "gRPC RemoveCartItem with spoofed identity metadata", err, codes.NotFound)

	// Anonymous with spoofed headers: still 401.
	got, _, body = s.Do(t, "GET", "/cart/"+str(owner), "", append([]string{"Authorization", ""}, spoof...)...)
	wantStatusBody(t, "anonymous GET /cart with spoofed identity headers", got, body, http.StatusUnauthorized, codes.Unauthenticated)
	if items, _ := restCart(t, s, "/cart/"+str(owner)); len(items) != 1 {
		t.Errorf("the owner's cart = %v, want the item still there", items)
	}
}

// TestKeyRotation: a key added to the gateway's JWKS file is accepted
// without a restart; once the old key is removed, its tokens are refused,
// even one the gateway had verified and cached.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	user := newID()
	oldTok := s.Token(t, user, "")
	next, err := devkeys.Generate("ES256", "rotated-"+str(user))
	if err != nil {
		t.Fatal(err)
	}
	newTok, err := next.Token(harness.Claims(user, ""))
	if err != nil {
		t.Fatal(err)
	}
	get := func(tok string) int {
		st, _, _ := s.Do(t, "GET", "/cart", "", "Authorization", harness.Bearer(tok))
		return st
	}
	if got, want := get(oldTok), http.StatusOK; got != want {
		t.Fatalf("current key: %d, want %d", got, want)
	}
	if got, want := get(newTok), http.StatusUnauthorized; got != want {
		t.Fatalf("a key not yet published: %d, want %d", got, want)
	}
	if err := devkeys.WriteJWKS(s.JWKSPath(), harness.Signer(t), next); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if got := get(newTok); got != http.StatusOK {
			return fmt.Sprintf("the added key's token: %d, want 200", got)
		}
		return ""
	})
	if err := devkeys.WriteJWKS(s.JWKSPath(), next); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if got := get(oldTok); got != http.StatusUnauthorized {
			return fmt.Sprintf("the removed key's token: %d, want 401", got)
		}
		return ""
	})
	if got, want := get(newTok), http.StatusOK; got != want {
		t.Errorf("the remaining key's token: %d, want %d", got, want)
	}
}

// TestServicesTrustNoOneByPosition: calls straight to a service's port, as a
// neighbour on the gateway's network would make them. Without a signed
// identity assertion every one is 401, whatever X-User-Id and X-Auth-Scopes
// say, and nothing changes; with a valid assertion for a plain user, the
// services still check the scopes of their admin and internal routes.
func TestServicesTrustNoOneByPosition(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	owner := newID()
	product := createProduct(t, s, "position", 10, 1)
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, product),
		"Authorization", harness.Bearer(s.Token(t, owner, "")))
	waitCart(t, s, owner, 1)

	call := func(base, method, path, body string, headers ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(rpcCtx(t), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Add(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, base, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	a, b := s.ServiceAURL(), s.ServiceBURL()
	newProduct := fmt.Sprintf(`{"product_id":%d,"product_name":"forged","quantity":5,"price_cents":1}`, newID())
	take := fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":3}]}`, product)
	for _, tc := range []struct {
		name, base, method, path, body string
		headers                        []string
	}{
		{"B cart, no headers", b, "GET", "/cart?user_id=" + str(owner), "", nil},
		{"B orders, spoofed X-User-Id", b, "GET", "/order?user_id=" + str(owner), "", []string{"X-User-Id", str(owner)}},
		{"B remove, spoofed admin", b, "DELETE", "/cart/1", "", []string{"X-User-Id", "1", "X-Auth-Scopes", harness.ScopeAdmin}},
		{"A stock write, spoofed admin", a, "POST", "/stock", newProduct, []string{"X-User-Id", "1", "X-Auth-Scopes", harness.ScopeAdmin}},
		{"A take stock, no headers", a, "POST", "/order/process_stock", take, nil},
		{"A take stock, forged assertion", a, "POST", "/order/process_stock", take, []string{"X-Identity-Assertion", "eyJhbGciOiJub25lIn0.e30."}},
	} {
		got, body := call(tc.base, tc.method, tc.path, tc.body, tc.headers...)
		if got != http.StatusUnauthorized || !strings.Contains(body, "UNAUTHENTICATED") {
			t.Errorf("%s: %d %s, want 401 UNAUTHENTICATED", tc.name, got, body)
		}
	}
	// A valid assertion for a plain user: the services' own scope checks.
	name, user := s.ServiceHeader("service_a", owner, "")
	if got, body := call(a, "POST", "/stock", newProduct, name, user); got != http.StatusForbidden {
		t.Errorf("A stock write as a plain user: %d %s, want 403", got, body)
	}
	if got, body := call(a, "POST", "/order/process_stock", take, name, user); got != http.StatusForbidden {
		t.Errorf("A take stock as a plain user: %d %s, want 403", got, body)
	}
	// The same user's assertion is for A only.
	if got, body := call(b, "GET", "/cart?user_id="+str(owner), "", name, user); got != http.StatusUnauthorized {
		t.Errorf("B with an assertion for A: %d %s, want 401", got, body)
	}
	if got := stockOf(t, s, product); got != 10 {
		t.Errorf("stock of %d = %d, want 10: a refused call changed it", product, got)
	}
	if items, _ := restCart(t, s, "/cart/"+str(owner)); len(items) != 1 {
		t.Errorf("the owner's cart = %v, want the item still there", items)
	}
}

// TestServiceHeaderTarget: the line `make -s service-header` prints is what
// the README says: a header the services accept for the user it names, and
// only for that user and that service.
func TestServiceHeaderTarget(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	runDir := t.TempDir()
	key, err := os.ReadFile(s.ServiceSigningKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runDir, "service-signing-key.json"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	line := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command("make", append([]string{"-s", "--no-print-directory", "service-header", "RUN_DIR=" + runDir}, args...)...)
		cmd.Dir = harness.RepoRoot(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make service-header %v: %v", args, err)
		}
		name, value, ok := strings.Cut(strings.TrimSpace(string(out)), ": ")
		if !ok || strings.Contains(value, "\n") {
			t.Fatalf("make service-header %v printed %q, want one Name: value line", args, out)
		}
		return name, value
	}
	get := func(url, name, value string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(rpcCtx(t), http.MethodGet, url, nil)
		req.Header.Set(name, value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	user := newID()
	name, value := line("SVC=service_a", "SUB="+str(user))
	if got := get(s.ServiceAURL()+"/cart/fallback/"+str(user), name, value); got != http.StatusOK {
		t.Errorf("A with the header for user %d, own cart: %d, want 200", user, got)
	}
	if got := get(s.ServiceAURL()+"/cart/fallback/"+str(user+1), name, value); got != http.StatusForbidden {
		t.Errorf("A with the header for user %d, another's cart: %d, want 403", user, got)
	}
	if got := get(s.ServiceBURL()+"/cart/"+str(user), name, value); got != http.StatusUnauthorized {
		t.Errorf("B with a header for A: %d, want 401", got)
	}
	name, value = line("SVC=service_b", "SCOPE=shop:admin")
	if got := get(s.ServiceBURL()+"/cart/"+str(user+1), name, value); got != http.StatusOK {
		t.Errorf("B with the gateway's own admin header: %d, want 200", got)
	}
}
