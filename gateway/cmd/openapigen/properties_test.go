package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tree returns the built document as a JSON tree, numbers as written.
func tree(tb testing.TB, swagger []byte) map[string]any {
	tb.Helper()
	out, err := Build(swagger, services())
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		tb.Fatal(err)
	}
	return doc
}

// Generators warn about minimum and maximum on a string (an int64 is one
// in the proto3 JSON mapping, its bounds stated by its pattern), and a
// schema that has them there is read as a number by some.
func TestNoNumericBoundsOnStrings(t *testing.T) {
	t.Parallel()
	n := 0
	walkSchemas(tree(t, swagger(t)), func(s map[string]any) {
		if s["type"] != "string" {
			return
		}
		n++
		for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", extExactMinimum, extExactMaximum} {
			if _, ok := s[k]; ok {
				t.Errorf("string schema %v has %s", s, k)
			}
		}
	})
	if n == 0 {
		t.Fatal("no string schema seen")
	}
}

// The bounds of integers are written exactly: an int64's maximum is
// 9223372036854775807, not that number rounded through float64.
func TestIntegerBoundsAreExact(t *testing.T) {
	t.Parallel()
	int64Max := 0
	walkSchemas(tree(t, swagger(t)), func(s map[string]any) {
		if s["type"] != "integer" {
			return
		}
		bits := 32
		if s["format"] == "int64" {
			bits = 64
		}
		for _, k := range []string{"minimum", "maximum"} {
			v, ok := s[k]
			if !ok {
				continue
			}
			n, isNum := v.(json.Number)
			if !isNum {
				t.Errorf("%s %v is not a number", k, v)
				continue
			}
			i, err := strconv.ParseInt(n.String(), 10, bits)
			if err != nil {
				t.Errorf("%s %s of an int%d is not one exactly: %v", k, n, bits, err)
			}
			if k == "maximum" && i == math.MaxInt64 {
				int64Max++
			}
		}
		for _, k := range []string{"exclusiveMinimum", "exclusiveMaximum"} {
			if _, ok := s[k]; ok {
				t.Errorf("integer schema %v has %s; an integer's bound is written inclusive", s, k)
			}
		}
	})
	if int64Max == 0 {
		t.Error("no int64 has the maximum 9223372036854775807")
	}
}

// Every component is used: generators make a type of each schema, and the
// gRPC response wrappers that REST never answers with (its answer is one
// of their fields) would be dead types in every client.
func TestNoUnusedComponents(t *testing.T) {
	t.Parallel()
	doc := tree(t, swagger(t))
	before := 0
	for _, g := range doc["components"].(map[string]any) {
		before += len(g.(map[string]any))
	}
	dropUnused(doc)
	after := 0
	for _, g := range doc["components"].(map[string]any) {
		after += len(g.(map[string]any))
	}
	if before != after {
		t.Errorf("%d components of %d are unused", before-after, before)
	}
	for _, name := range []string{"CreateStockResponse", "AddCartItemResponse", "GetStockResponse"} {
		if _, ok := componentsOf(doc, "schemas")[name]; ok {
			t.Errorf("schema %s is in the document; REST answers with its item", name)
		}
	}
}

// dropUnused itself: a schema referred to only by another unused one goes
// too, one referred to from a path through a response stays.
func TestDropUnused(t *testing.T) {
	t.Parallel()
	ref := func(kind, name string) map[string]any {
		return map[string]any{"$ref": "#/components/" + kind + "/" + name}
	}
	doc := map[string]any{
		"paths": map[string]any{"/a": map[string]any{"get": map[string]any{"responses": map[string]any{"200": ref("responses", "Ok")}}}},
		"components": map[string]any{
			"responses":       map[string]any{"Ok": map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": ref("schemas", "Used")}}}},
			"schemas":         map[string]any{"Used": map[string]any{"type": "object"}, "Wrapper": map[string]any{"properties": map[string]any{"x": ref("schemas", "Inner")}}, "Inner": map[string]any{"type": "string"}},
			"parameters":      map[string]any{"Unused": map[string]any{}},
			"securitySchemes": map[string]any{"bearer": map[string]any{}},
		},
	}
	dropUnused(doc)
	got := map[string][]string{}
	for kind, g := range doc["components"].(map[string]any) {
		got[kind] = slices.Sorted(maps.Keys(g.(map[string]any)))
	}
	want := map[string][]string{"responses": {"Ok"}, "schemas": {"Used"}, "securitySchemes": {"bearer"}}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("components %v, want %v", got, want)
	}
}

// The gateway answers with every field of a response, so every response
// schema requires all of its properties, and generated clients make none
// of them optional.
func TestResponsesRequireEveryProperty(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	g := newRequestBodies(doc)
	n := 0
	for name := range g.response {
		s := doc.Components.Schemas[name]
		if s == nil || len(s.Value.Properties) == 0 {
			continue
		}
		n++
		if got, want := slices.Sorted(slices.Values(s.Value.Required)), slices.Sorted(maps.Keys(s.Value.Properties)); !slices.Equal(got, want) {
			t.Errorf("response schema %s requires %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"StockItem", "CartItem", "Order", "Status", "GoogleProtobufAny"} {
		if !g.response[name] {
			t.Errorf("%s is no response schema", name)
		}
	}
	if n == 0 {
		t.Fatal("no response schema seen")
	}
}

// A schema named Any shadows Python's typing.Any in a generated client.
func TestNoSchemaShadowsALanguageName(t *testing.T) {
	t.Parallel()
	schemas := componentsOf(tree(t, swagger(t)), "schemas")
	if _, ok := schemas["Any"]; ok {
		t.Error("a schema is named Any")
	}
	if _, ok := schemas["GoogleProtobufAny"]; !ok {
		t.Error("no schema GoogleProtobufAny")
	}
}

func TestInfoLicenseAndServers(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	if doc.Info.License == nil || doc.Info.License.Name == "" {
		t.Errorf("info.license %v, want a name", doc.Info.License)
	}
	if len(doc.Servers) == 0 || doc.Servers[0].URL != "/" {
		t.Errorf("servers %v, want the serving gateway (/) first", doc.Servers)
	}
}

// Every request field has an example (Swagger UI fills its forms from
// them), and every example fits its schema: Build refuses a document where
// either is not so.
func TestRequestExamples(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	body := doc.Paths.Value("/cart/add").Post.RequestBody.Value.Content.Get("application/json").Schema
	s := doc.Components.Schemas[strings.TrimPrefix(body.Ref, schemaRefPrefix)].Value
	for name, want := range map[string]any{"user_id": "7", "product_id": "1", "quantity": float64(1)} {
		if got := s.Properties[name].Value.Example; got != want {
			t.Errorf("POST /cart/add %s example %v (%T), want %v", name, got, got, want)
		}
	}
	for _, p := range doc.Paths.Value("/stock").Get.Parameters {
		if p.Value != nil && p.Ref == "" && p.Value.Example == nil {
			t.Errorf("GET /stock parameter %s has no example", p.Value.Name)
		}
	}

	for _, tc := range []struct {
		name   string
		change func(quantity map[string]any)
		want   string
	}{
		{"missing", func(q map[string]any) { delete(q, "example") }, "POST /cart/add body.quantity"},
		{"out of its bounds", func(q map[string]any) { q["example"] = 0 }, "at least 1"},
		{"of another type", func(q map[string]any) { q["example"] = true }, "not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var raw map[string]any
			if err := json.Unmarshal(swagger(t), &raw); err != nil {
				t.Fatal(err)
			}
			q := raw["definitions"].(map[string]any)["AddCartItemRequest"].(map[string]any)["properties"].(map[string]any)["quantity"].(map[string]any)
			tc.change(q)
			b, err := json.Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Build(b, services()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
