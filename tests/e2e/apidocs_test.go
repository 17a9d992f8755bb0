package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// httpBinding is one google.api.http binding of an RPC.
type httpBinding struct{ method, path string }

// bindingsOf reads the google.api.http rule of md: the primary binding and
// the additional ones.
func bindingsOf(tb testing.TB, md protoreflect.MethodDescriptor) []httpBinding {
	tb.Helper()
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	if rule == nil {
		tb.Fatalf("%s has no google.api.http rule", md.FullName())
	}
	var out []httpBinding
	for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			out = append(out, httpBinding{"get", p.Get})
		case *annotations.HttpRule_Post:
			out = append(out, httpBinding{"post", p.Post})
		case *annotations.HttpRule_Put:
			out = append(out, httpBinding{"put", p.Put})
		case *annotations.HttpRule_Delete:
			out = append(out, httpBinding{"delete", p.Delete})
		case *annotations.HttpRule_Patch:
			out = append(out, httpBinding{"patch", p.Patch})
		default:
			tb.Fatalf("%s: unexpected binding %v", md.FullName(), r)
		}
	}
	return out
}

// servedServices are the services the gateway serves.
var servedServices = []protoreflect.ServiceDescriptor{
	stockv1.File_shop_stock_v1_stock_proto.Services().ByName("StockService"),
	cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
	orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
}

// TestOpenAPIDocument reads GET /openapi.json from the running gateway: it is
// the document that make generate wrote (byte for byte), an OpenAPI 3
// document, and it has an operation for every REST binding of every RPC,
// additional bindings included, and no other.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{NoEvents: true})
	status, h, body := s.DoRaw(t, "GET", "/openapi.json", "")
	if status != http.StatusOK {
		t.Fatalf("GET /openapi.json: status %d, want 200: %s", status, body)
	}
	if got, want := h.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type %q, want %q", got, want)
	}
	want, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "gen", "openapi", "shop.openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Errorf("the served document differs from gen/openapi/shop.openapi.json (%d bytes served, %d generated)", len(body), len(want))
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}
	listed := map[httpBinding]bool{}
	for path, item := range doc.Paths {
		for method := range item {
			listed[httpBinding{method, path}] = true
		}
	}
	for _, sd := range servedServices {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			bindings := bindingsOf(t, md)
			for j, b := range bindings {
				op := doc.Paths[b.path][b.method]
				if j > 0 && shadowed(t, b) {
					primary := doc.Paths[bindings[0].path][bindings[0].method]
					if op != nil {
						t.Errorf("%s %s: an alias of another path's shape is in the document", b.method, b.path)
					}
					if desc, _ := primary["description"].(string); !strings.Contains(desc, "`"+strings.ToUpper(b.method)+" "+b.path+"`") {
						t.Errorf("%s: the description of %s %s does not name the alias %s %s", md.FullName(), bindings[0].method, bindings[0].path, b.method, b.path)
					}
					continue
				}
				if op == nil {
					t.Errorf("%s: %s %s is not in the document", md.FullName(), strings.ToUpper(b.method), b.path)
					continue
				}
				delete(listed, b)
				if id, _ := op["operationId"].(string); !strings.HasPrefix(id, string(sd.Name())+"_"+string(md.Name())) {
					t.Errorf("%s %s: operationId %q, want one of %s", b.method, b.path, id, md.FullName())
				}
			}
		}
	}
	for b := range listed {
		t.Errorf("%s %s is in the document but is no RPC's binding", b.method, b.path)
	}
}

// pathParam matches a parameter of a path template.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// shadowed reports whether b has the shape of another binding's template
// (the same segments, other parameter names), as GET /cart/{user_id} has
// that of DELETE /cart/{item_id}. OpenAPI forbids two such templates, so
// the document leaves out such an alias (an additional binding) and names it
// in the description of its RPC's primary operation; the route is served.
func shadowed(tb testing.TB, b httpBinding) bool {
	tb.Helper()
	shape := pathParam.ReplaceAllString(b.path, "{}")
	for _, sd := range servedServices {
		for i := 0; i < sd.Methods().Len(); i++ {
			for _, o := range bindingsOf(tb, sd.Methods().Get(i)) {
				if o.path != b.path && pathParam.ReplaceAllString(o.path, "{}") == shape {
					return true
				}
			}
		}
	}
	return false
}
