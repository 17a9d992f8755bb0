package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"
)

func swagger(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "gen", "openapiv2", "shop.swagger.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func build(tb testing.TB, swagger []byte) *openapi3.T {
	tb.Helper()
	out, err := Build(swagger, services())
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		tb.Fatalf("loading the built document: %v", err)
	}
	return doc
}

func TestServicesAreTheGatewaysServices(t *testing.T) {
	t.Parallel()
	var got, want []string
	for _, sd := range services() {
		got = append(got, string(sd.FullName()))
	}
	for _, sd := range app.Services() {
		want = append(want, string(sd.FullName()))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("openapigen describes %v, the gateway serves %v", got, want)
	}
}

func TestBuildIsTheCommittedDocument(t *testing.T) {
	t.Parallel()
	got, err := Build(swagger(t), services())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "..", "gen", "openapi", DocumentFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("gen/openapi is out of date; run make generate")
	}
}

func TestEveryBindingIsAnOperation(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	omitted := shadowedAliases(services())
	n := 0
	for _, sd := range services() {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			bindings := httprule.Bindings(md)
			if len(bindings) == 0 {
				t.Errorf("%s has no REST binding", md.FullName())
			}
			for _, b := range bindings {
				n++
				t.Run(b.Method+" "+b.Template, func(t *testing.T) {
					item := doc.Paths.Value(b.Template)
					if omitted[b.Method+" "+b.Template] {
						if item != nil && item.GetOperation(b.Method) != nil {
							t.Fatalf("the shadowed alias is in the document")
						}
						p := bindings[0]
						if op := doc.Paths.Value(p.Template).GetOperation(p.Method); !strings.Contains(op.Description, "`"+b.Method+" "+b.Template+"`") {
							t.Errorf("%s %s does not name the alias: %q", p.Method, p.Template, op.Description)
						}
						return
					}
					if item == nil || item.GetOperation(b.Method) == nil {
						t.Fatalf("no operation")
					}
					op := item.GetOperation(b.Method)
					if want := string(sd.Name()) + "_" + string(md.Name()); !strings.HasPrefix(op.OperationID, want) {
						t.Errorf("operationId %q, want %q or %q2", op.OperationID, want, want)
					}
					headers := map[string]bool{}
					for _, p := range op.Parameters {
						if p.Value.In == openapi3.ParameterInHeader {
							headers[p.Value.Name] = true
						}
					}
					if !headers["Grpc-Timeout"] {
						t.Errorf("no Grpc-Timeout header parameter")
					}
					if got, want := headers["Idempotency-Key"], emits(md); got != want {
						t.Errorf("Idempotency-Key parameter: %v, want %v (the RPC emits an event: %v)", got, want, want)
					}
					codes := []int{400, 401, 503, 504}
					if authPolicy(md).GetAccess() != annotationsv1.Access_ACCESS_PUBLIC {
						codes = append(codes, 403)
					}
					for _, code := range codes {
						r := op.Responses.Status(code)
						if r == nil || r.Value == nil || r.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/Status" {
							t.Errorf("response %d is not a Status", code)
						}
					}
				})
			}
		}
	}
	if got := len(doc.Paths.Map()); got == 0 || n == 0 {
		t.Fatalf("%d paths, %d bindings", got, n)
	}
}

// TestDistinctTemplates checks that no two paths of the document have one
// shape (the same segments once parameter names are set aside), which
// OpenAPI forbids, and that only the alias GET /cart/{user_id} was left out
// to get there.
func TestDistinctTemplates(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	shapes := map[string]string{}
	for path := range doc.Paths.Map() {
		shape := pathParam.ReplaceAllString(path, "{}")
		if other, ok := shapes[shape]; ok {
			t.Errorf("%s and %s have one shape", path, other)
		}
		shapes[shape] = path
	}
	got := shadowedAliases(services())
	if want := map[string]bool{"GET /cart/{user_id}": true}; !maps.Equal(got, want) {
		t.Errorf("aliases left out = %v, want %v", got, want)
	}
}

func TestSecurityAndErrors(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	s := doc.Components.SecuritySchemes["bearer"]
	if s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Fatalf("bearer security scheme %+v, want http bearer", s)
	}
	if len(doc.Security) != 0 {
		t.Errorf("document security %v, want none: each operation states its own", doc.Security)
	}
	st := doc.Components.Schemas["Status"]
	if st == nil {
		t.Fatal("no Status schema")
	}
	for _, f := range []string{"code", "message", "details"} {
		if st.Value.Properties[f] == nil {
			t.Errorf("Status has no %q", f)
		}
	}
	timeout := doc.Components.Parameters["GrpcTimeout"].Value.Schema.Value
	if timeout.Pattern != reqinfo.GrpcTimeoutPattern {
		t.Errorf("Grpc-Timeout pattern %q, want the gateway's %q", timeout.Pattern, reqinfo.GrpcTimeoutPattern)
	}
}

// Build refuses a Swagger document that lacks a binding of an RPC or has an
// operation that is no RPC's, so that the served document cannot drift from
// the routes.
func TestBuildRefusesADocumentThatDiffersFromTheRoutes(t *testing.T) {
	t.Parallel()
	var raw map[string]any
	if err := json.Unmarshal(swagger(t), &raw); err != nil {
		t.Fatal(err)
	}
	paths := raw["paths"].(map[string]any)
	cases := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"missing binding", func(p map[string]any) { delete(p, "/order/pay") }, "missing from the Swagger document"},
		{"extra operation", func(p map[string]any) { p["/extra"] = p["/order/pay"] }, "no RPC's binding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := map[string]any{}
			for k, v := range paths {
				p[k] = v
			}
			tc.change(p)
			doc := map[string]any{}
			for k, v := range raw {
				doc[k] = v
			}
			doc["paths"] = p
			b, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(b, services())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestInt64Bounds checks that a lower bound of 0 on an int64 field, which
// the document writes as a string, is stated as a pattern (minimum applies
// to numbers only): "0" and "" are out of "> 0", "-1" out of ">= 0".
func TestInt64Bounds(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	var productID *openapi3.Schema
	for _, p := range doc.Paths.Value("/stock/{product_id}").Get.Parameters {
		if p.Value != nil && p.Value.Name == "product_id" {
			productID = p.Value.Schema.Value
		}
	}
	price := doc.Components.Schemas["StockItem"].Value.Properties["price_cents"].Value
	for _, tc := range []struct {
		name   string
		schema *openapi3.Schema
		value  string
		want   bool
	}{
		{"id 1", productID, "1", true},
		{"id 10", productID, "10", true},
		{"id 0", productID, "0", false},
		{"id empty", productID, "", false},
		{"id negative", productID, "-1", false},
		{"price 0", price, "0", true},
		{"price negative", price, "-1", false},
		{"price empty", price, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.schema == nil {
				t.Fatal("no schema")
			}
			err := tc.schema.VisitJSON(tc.value)
			if got := err == nil; got != tc.want {
				t.Errorf("%q valid = %v (%v), want %v", tc.value, got, err, tc.want)
			}
		})
	}
}

// Each operation states who may call it, from the RPC's policy option: the
// public reads need no token (security: [], no requirement) and cannot be
// 403, the others need the bearer token (security: [{bearer: []}], nothing
// else) and can be.
func TestOperationSecurityFollowsThePolicy(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	cases := []struct {
		method, path string
		public       bool
	}{
		{http.MethodGet, "/stock", true},
		{http.MethodGet, "/stock/{product_id}", true},
		{http.MethodPost, "/stock", false},
		{http.MethodPost, "/cart/add", false},
		{http.MethodPost, "/order/process_stock", false},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			item := doc.Paths.Value(tc.path)
			if item == nil || item.GetOperation(tc.method) == nil {
				t.Fatalf("no operation %s %s", tc.method, tc.path)
			}
			op := item.GetOperation(tc.method)
			if op.Security == nil {
				t.Fatal("no security of its own")
			}
			if tc.public && len(*op.Security) != 0 {
				t.Errorf("security %v, want [] (public)", *op.Security)
			}
			if !tc.public && (len(*op.Security) != 1 || len((*op.Security)[0]) != 1 || (*op.Security)[0]["bearer"] == nil) {
				t.Errorf("security %v, want [{bearer: []}]", *op.Security)
			}
			if got, want := op.Responses.Status(http.StatusForbidden) != nil, !tc.public; got != want {
				t.Errorf("has a 403 response = %v, want %v", got, want)
			}
		})
	}
}
