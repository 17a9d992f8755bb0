package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// errorDomain is the domain of the API's google.rpc.ErrorInfo details.
const errorDomain = "shop.api"

// restDetails reads the typed details of a google.rpc.Status JSON body: the
// field paths of its BadRequest, the reason of its ErrorInfo, and whether
// it has a RetryInfo with a delay.
func restDetails(tb testing.TB, body map[string]any) (fields []string, reason string, retry bool) {
	tb.Helper()
	list, _ := body["details"].([]any)
	for _, d := range list {
		m, _ := d.(map[string]any)
		switch m["@type"] {
		case "type.googleapis.com/google.rpc.BadRequest":
			fvs, _ := m["field_violations"].([]any)
			for _, fv := range fvs {
				f, _ := fv.(map[string]any)
				if desc, _ := f["description"].(string); desc == "" {
					tb.Errorf("field violation %v has no description", f)
				}
				fields = append(fields, fmt.Sprint(f["field"]))
			}
		case "type.googleapis.com/google.rpc.ErrorInfo":
			if m["domain"] != errorDomain {
				tb.Errorf("ErrorInfo domain %v, want %q", m["domain"], errorDomain)
			}
			reason, _ = m["reason"].(string)
		case "type.googleapis.com/google.rpc.RetryInfo":
			retry = m["retry_delay"] != nil && m["retry_delay"] != "0s"
		default:
			tb.Errorf("unexpected detail %v", m)
		}
	}
	return fields, reason, retry
}

// grpcDetails is restDetails for a gRPC status.
func grpcDetails(tb testing.TB, err error) (fields []string, reason string, retry bool) {
	tb.Helper()
	for _, d := range status.Convert(err).Details() {
		switch v := d.(type) {
		case *errdetails.BadRequest:
			for _, fv := range v.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		case *errdetails.ErrorInfo:
			if v.GetDomain() != errorDomain {
				tb.Errorf("ErrorInfo domain %q, want %q", v.GetDomain(), errorDomain)
			}
			reason = v.GetReason()
		case *errdetails.RetryInfo:
			retry = v.GetRetryDelay().AsDuration() > 0
		default:
			tb.Errorf("unexpected detail %T %v", d, d)
		}
	}
	return fields, reason, retry
}

// TestErrorDetails sends, over REST and over gRPC, a request with each
// validated field wrong (whether the gateway or a service finds it) and
// checks the google.rpc.BadRequest: one field_violations entry per wrong
// field, named by its path in proto field names from the request message.
// The errors clients branch on carry a google.rpc.ErrorInfo (out of stock,
// empty cart, unknown product), and UNAVAILABLE a google.rpc.RetryInfo.
func TestErrorDetails(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{NoEvents: true})
	c := newClients(t, s)
	p := createProduct(t, s, "detailed pen", 5, 100)
	user, empty, unknown := newID(), newID(), newID()

	type call struct {
		method, path, body string
		grpc               func() error
	}
	cases := []struct {
		name       string
		call       call
		wantCode   codes.Code
		wantFields []string
		wantReason string
	}{
		// Required fields, found by the gateway.
		{"CreateStock product_name missing", call{"POST", "/stock", fmt.Sprintf(`{"product_id":%d,"quantity":1,"price_cents":1}`, unknown),
			func() error {
				return errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: unknown, Quantity: 1, PriceCents: 1}}))
			}}, codes.InvalidArgument, []string{"item.product_name"}, ""},
		{"AddCartItem product_id and quantity missing", call{"POST", "/cart/add", fmt.Sprintf(`{"user_id":%d}`, user),
			func() error { return errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user})) }},
			codes.InvalidArgument, []string{"product_id", "quantity"}, ""},
		{"ProcessOrderStock items missing", call{"POST", "/order/process_stock", `{"items":[]}`,
			func() error { return errOf(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{})) }},
			codes.InvalidArgument, []string{"items"}, ""},
		// Bounds, found by the services.
		{"CreateStock price_cents negative", call{"POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":1,"price_cents":-1}`, unknown),
			func() error {
				return errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: unknown, ProductName: "x", Quantity: 1, PriceCents: -1}}))
			}}, codes.InvalidArgument, []string{"item.price_cents"}, ""},
		{"CreateStock quantity and price_cents negative", call{"POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"x","quantity":-1,"price_cents":-1}`, unknown),
			func() error {
				return errOf(c.stock.CreateStock(rpcCtx(t), &stockv1.CreateStockRequest{Item: &stockv1.StockItem{ProductId: unknown, ProductName: "x", Quantity: -1, PriceCents: -1}}))
			}}, codes.InvalidArgument, []string{"item.quantity", "item.price_cents"}, ""},
		{"SetStockLevel quantity negative", call{"POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":-1}`, p),
			func() error {
				return errOf(c.stock.SetStockLevel(rpcCtx(t), &stockv1.SetStockLevelRequest{ProductId: p, Quantity: -1}))
			}}, codes.InvalidArgument, []string{"quantity"}, ""},
		{"AddCartItem quantity negative", call{"POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":-1}`, user, p),
			func() error {
				return errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: p, Quantity: -1}))
			}}, codes.InvalidArgument, []string{"quantity"}, ""},
		{"ProcessOrderStock second line's quantity negative", call{"POST", "/order/process_stock", fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1},{"product_id":%d,"quantity":-1}]}`, p, p),
			func() error {
				return errOf(c.order.ProcessOrderStock(rpcCtx(t), &orderv1.ProcessOrderStockRequest{Items: []*orderv1.StockLine{{ProductId: p, Quantity: 1}, {ProductId: p, Quantity: -1}}}))
			}}, codes.InvalidArgument, []string{"items[1].quantity"}, ""},
		// Errors clients branch on.
		{"AddCartItem out of stock", call{"POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":6}`, user, p),
			func() error {
				return errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: p, Quantity: 6}))
			}}, codes.FailedPrecondition, nil, "OUT_OF_STOCK"},
		{"AddCartItem unknown product", call{"POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, unknown),
			func() error {
				return errOf(c.cart.AddCartItem(rpcCtx(t), &cartv1.AddCartItemRequest{UserId: user, ProductId: unknown, Quantity: 1}))
			}}, codes.NotFound, nil, "UNKNOWN_PRODUCT"},
		{"GetStock unknown product", call{"GET", "/stock/" + str(unknown), "",
			func() error { return errOf(c.stock.GetStock(rpcCtx(t), &stockv1.GetStockRequest{ProductId: unknown})) }},
			codes.NotFound, nil, "UNKNOWN_PRODUCT"},
		{"PayOrder empty cart", call{"POST", "/order/pay", fmt.Sprintf(`{"user_id":%d}`, empty),
			func() error { return errOf(c.order.PayOrder(rpcCtx(t), &orderv1.PayOrderRequest{UserId: empty})) }},
			codes.FailedPrecondition, nil, "EMPTY_CART"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("REST", func(t *testing.T) {
				got, _, body := s.Do(t, tc.call.method, tc.call.path, tc.call.body)
				if code := body["code"]; code != float64(tc.wantCode) {
					t.Fatalf("status %d, code %v, want %v: %v", got, code, tc.wantCode, body)
				}
				fields, reason, _ := restDetails(t, body)
				if !slices.Equal(fields, tc.wantFields) || reason != tc.wantReason {
					t.Errorf("field violations %q, reason %q; want %q, %q (body %v)", fields, reason, tc.wantFields, tc.wantReason, body)
				}
			})
			t.Run("gRPC", func(t *testing.T) {
				err := tc.call.grpc()
				if got := status.Code(err); got != tc.wantCode {
					t.Fatalf("code %v (%v), want %v", got, err, tc.wantCode)
				}
				fields, reason, _ := grpcDetails(t, err)
				if !slices.Equal(fields, tc.wantFields) || reason != tc.wantReason {
					t.Errorf("field violations %q, reason %q; want %q, %q (%v)", fields, reason, tc.wantFields, tc.wantReason, err)
				}
			})
		})
	}

	// UNAVAILABLE tells when to retry.
	s.StopServiceB()
	got, _, body := s.Do(t, "GET", "/order?user_id="+str(user), "")
	if _, _, retry := restDetails(t, body); got != http.StatusServiceUnavailable || !retry {
		t.Errorf("GET /order with service_b down: status %d, RetryInfo %v; want 503 with a RetryInfo (%v)", got, retry, body)
	}
	err := errOf(c.order.ListOrders(rpcCtx(t), &orderv1.ListOrdersRequest{UserId: user}))
	if _, _, retry := grpcDetails(t, err); status.Code(err) != codes.Unavailable || !retry {
		t.Errorf("ListOrders with service_b down: %v, RetryInfo %v; want UNAVAILABLE with a RetryInfo", err, retry)
	}
}

// TestDecodeErrorDetails sends REST bodies that do not decode as the
// request message (a value of the wrong type or out of range, a field that
// does not exist, at the top and in a list's element) and checks that each
// is a 400 whose google.rpc.BadRequest names the field by its proto path,
// whose message has no camelCase JSON name in it, and that holds no null;
// no service is called (the cart stays empty).
func TestDecodeErrorDetails(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{NoEvents: true})
	p := createProduct(t, s, "decoded pen", 5, 100)
	user := newID()
	for _, tc := range []struct {
		name, path, body string
		wantFields       []string
	}{
		{"product_id not a number", "/cart/add", `{"product_id":"abc","quantity":1}`, []string{"product_id"}},
		{"product_id by its JSON name", "/cart/add", `{"productId":"abc","quantity":1}`, []string{"product_id"}},
		{"quantity a fraction", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1.5}`, p), []string{"quantity"}},
		{"quantity past int32", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":2147483648}`, p), []string{"quantity"}},
		{"product_id past int64", "/cart/add", `{"product_id":9223372036854775808,"quantity":1}`, []string{"product_id"}},
		{"unknown field", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1,"colour":"red"}`, p), []string{"colour"}},
		{"every problem at once", "/cart/add", `{"product_id":"abc","quantity":1.5,"colour":"red"}`, []string{"product_id", "quantity", "colour"}},
		{"wrong type in a line", "/order/process_stock", `{"items":[{"product_id":1,"quantity":1},{"product_id":1,"quantity":"many"}]}`, []string{"items[1].quantity"}},
		{"string field a number", "/stock/" + str(p), `{"product_name":7,"quantity":1,"price_cents":1}`, []string{"item.product_name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.HasPrefix(tc.path, "/stock/") {
				method = "PUT"
			}
			got, _, body := s.Do(t, method, tc.path, tc.body, "Authorization", harness.Bearer(s.Token(t, user, "shop:admin")))
			if got != http.StatusBadRequest || body["code"] != float64(codes.InvalidArgument) {
				t.Fatalf("status %d, body %v; want 400 INVALID_ARGUMENT", got, body)
			}
			fields, _, _ := restDetails(t, body)
			if !slices.Equal(fields, tc.wantFields) {
				t.Errorf("field violations %q, want %q (body %v)", fields, tc.wantFields, body)
			}
			msg, _ := body["message"].(string)
			if w := jsonName.FindString(msg); w != "" {
				t.Errorf("message %q names a field by its JSON name %q", msg, w)
			}
			if raw, _ := json.Marshal(body); strings.Contains(string(raw), "null") {
				t.Errorf("the error holds a null: %s", raw)
			}
		})
	}
	if got, _, cart := s.Do(t, "GET", "/cart?user_id="+str(user), ""); got != 200 || fmt.Sprint(cart["items"]) != "[]" {
		t.Errorf("GET /cart after refused bodies: %d %v, want an empty cart", got, cart)
	}
}

// jsonName matches a camelCase JSON field name such as productId.
var jsonName = regexp.MustCompile(`\b[a-z]+[A-Z][A-Za-z]*\b`)
