package drift_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/drift"
	"github.com/shopgateway/shop/gateway/internal/forward"
)

// The documents in testdata are what the services' apps generate
// (make check-contract writes them to bin/contract/; copy them here when a
// service's API changes on purpose).

func plans(tb testing.TB) []forward.Plan {
	tb.Helper()
	p, err := forward.Plans(app.Services(), forward.DefaultTable)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func load(tb testing.TB, name string) map[string]any {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		tb.Fatal(err)
	}
	return doc
}

// at walks doc along keys (objects only).
func at(tb testing.TB, doc map[string]any, keys ...string) map[string]any {
	tb.Helper()
	cur := doc
	for _, k := range keys {
		next, ok := cur[k].(map[string]any)
		if !ok {
			tb.Fatalf("no object at %s", strings.Join(keys, "/"))
		}
		cur = next
	}
	return cur
}

func rename(m map[string]any, from, to string) {
	m[to] = m[from]
	delete(m, from)
}

func check(tb testing.TB, upstream string, doc map[string]any) []string {
	tb.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	probs, err := drift.Check(plans(tb), upstream, b)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.String()
	}
	return out
}

func TestCheckPassesOnTheServicesAsTheyAre(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{forward.ServiceA, forward.ServiceB} {
		if got := check(t, svc, load(t, svc)); len(got) != 0 {
			t.Errorf("%s: got problems %q, want none", svc, got)
		}
	}
}

func TestCheckFindsDrift(t *testing.T) {
	t.Parallel()
	schemas := func(tb testing.TB, doc map[string]any) map[string]any {
		return at(tb, doc, "components", "schemas")
	}
	tests := []struct {
		name     string
		upstream string
		edit     func(tb testing.TB, doc map[string]any)
		want     []string // each must be a substring of one problem
	}{{
		name:     "body field renamed in the service's model",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			m := schemas(tb, doc)["CartItemCreate"].(map[string]any)
			rename(at(tb, m, "properties"), "quantity", "qty")
			m["required"] = []any{"user_id", "product_id", "qty"}
		},
		want: []string{
			"shop.cart.v1.CartService.AddCartItem: request body: field quantity is sent but the service does not declare it",
			"shop.cart.v1.CartService.AddCartItem: request body: the service requires field qty, which the proto does not have",
		},
	}, {
		name:     "response field renamed",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			rename(at(tb, schemas(tb, doc), "OrderPublic", "properties"), "total_cents", "total")
		},
		want: []string{
			"shop.order.v1.OrderService.PayOrder: response: field total_cents is read but the service does not declare it",
			"shop.order.v1.OrderService.GetOrder: response: field total_cents is read",
			"shop.order.v1.OrderService.ListOrders: response.orders[]: field total_cents is read",
		},
	}, {
		name:     "body field of an incompatible type",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			at(tb, schemas(tb, doc), "StockCreate", "properties")["price_cents"] = map[string]any{"type": "string"}
		},
		want: []string{"CreateStock: request body.price_cents: the service declares string, the proto int64 (JSON integer)"},
	}, {
		name:     "nullable field still accepted",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			at(tb, schemas(tb, doc), "StockCreate", "properties")["price_cents"] = map[string]any{
				"anyOf": []any{map[string]any{"type": "integer"}, map[string]any{"type": "null"}},
			}
		},
	}, {
		name:     "response enum value unknown to the proto",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			at(tb, schemas(tb, doc), "OrderPublic", "properties")["status"] = map[string]any{"type": "string", "enum": []any{"ORDER_STATUS_PAID", "SHIPPED"}}
		},
		want: []string{`GetOrder: response.status: the service may answer "SHIPPED", which is not a value of shop.order.v1.OrderStatus`},
	}, {
		name:     "operation gone",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			delete(at(tb, doc, "paths"), "/order/pay")
		},
		want: []string{"shop.order.v1.OrderService.PayOrder: POST /order/pay: the service declares no such operation"},
	}, {
		name:     "method changed",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			rename(at(tb, doc, "paths", "/stock/{product_id}"), "put", "patch")
		},
		want: []string{"UpdateStock: PUT /stock/{product_id}: the service declares no such operation"},
	}, {
		name:     "path parameter renamed with the path: still the same route",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			paths := at(tb, doc, "paths")
			rename(paths, "/order/{order_id}", "/order/{id}")
			op := at(tb, paths, "/order/{id}", "get")
			op["parameters"].([]any)[0].(map[string]any)["name"] = "id"
		},
	}, {
		name:     "path parameter of an incompatible type",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			op := at(tb, doc, "paths", "/order/{order_id}", "get")
			op["parameters"].([]any)[0].(map[string]any)["schema"] = map[string]any{"type": "boolean"}
		},
		want: []string{"GetOrder: path parameter order_id: the service declares boolean, the proto int64 (JSON integer or string)"},
	}, {
		name:     "query parameter renamed",
		upstream: forward.ServiceB,
		edit: func(tb testing.TB, doc map[string]any) {
			op := at(tb, doc, "paths", "/cart", "get")
			op["parameters"].([]any)[0].(map[string]any)["name"] = "uid"
		},
		want: []string{"GetCart: GET /cart: query parameter user_id is sent but not declared"},
	}, {
		name:     "new required query parameter",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			op := at(tb, doc, "paths", "/stock", "get")
			op["parameters"] = append(op["parameters"].([]any), map[string]any{"name": "region", "in": "query", "required": true, "schema": map[string]any{"type": "string"}})
		},
		want: []string{"ListStock: GET /stock: the service requires query parameter region, which the gateway never sends"},
	}, {
		name:     "request body gone",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			delete(at(tb, doc, "paths", "/stock", "post"), "requestBody")
		},
		want: []string{"CreateStock: POST /stock: the gateway sends a JSON body (shop.stock.v1.StockItem), the service declares none"},
	}, {
		name:     "success response without a schema",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			delete(at(tb, doc, "paths", "/stock/{product_id}", "get", "responses", "200"), "content")
		},
		want: []string{"GetStock: GET /stock/{product_id}: the service's 2xx response has no JSON schema"},
	}, {
		name:     "repeated field no longer an array",
		upstream: forward.ServiceA,
		edit: func(tb testing.TB, doc map[string]any) {
			at(tb, schemas(tb, doc), "ProcessStockRequest", "properties")["items"] = map[string]any{"$ref": "#/components/schemas/StockLine"}
		},
		want: []string{"ProcessOrderStock: request body.items: the service declares object, the proto a repeated field"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := load(t, tt.upstream)
			tt.edit(t, doc)
			got := check(t, tt.upstream, doc)
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no problem contains %q; got %q", w, got)
				}
			}
			if len(tt.want) == 0 && len(got) != 0 {
				t.Errorf("got problems %q, want none", got)
			}
		})
	}
}

func TestCheckRefusesWhatIsNotAnOpenAPI3Document(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"not JSON":    "<html>",
		"swagger 2.0": `{"swagger":"2.0","paths":{}}`,
		"too large":   `{"openapi":"3.1.0","x":"` + strings.Repeat("a", drift.MaxDocumentBytes) + `"}`,
	} {
		if _, err := drift.Check(plans(t), forward.ServiceA, []byte(doc)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}
