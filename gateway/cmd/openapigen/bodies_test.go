package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// visit calls f on every schema reachable from ref (through references,
// properties and items), once each, with a path for messages.
func visit(ref *openapi3.SchemaRef, path string, seen map[*openapi3.Schema]bool, f func(path string, s *openapi3.Schema)) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	seen[ref.Value] = true
	if ref.Ref != "" {
		path = ref.Ref
	}
	f(path, ref.Value)
	for name, p := range ref.Value.Properties {
		visit(p, path+"."+name, seen, f)
	}
	visit(ref.Value.Items, path+"[]", seen, f)
	for _, alt := range ref.Value.OneOf {
		visit(alt, path, seen, f)
	}
}

// Every object a request body holds refuses properties it does not name,
// as the gateway refuses unknown fields; no object of a response does,
// since answers may gain fields. No schema is both.
func TestRequestBodiesAreClosedResponsesOpen(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	request, response := map[*openapi3.Schema]bool{}, map[*openapi3.Schema]bool{}
	bodies := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Value.Content {
					bodies++
					visit(mt.Schema, method+" "+path, request, func(at string, s *openapi3.Schema) {
						if isObject(s) && (s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has) {
							t.Errorf("%s: a request object without additionalProperties: false", at)
						}
					})
				}
			}
			for code, r := range op.Responses.Map() {
				for _, mt := range r.Value.Content {
					visit(mt.Schema, method+" "+path+" "+code, response, func(at string, s *openapi3.Schema) {
						if s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has {
							t.Errorf("%s: a response object with additionalProperties: false", at)
						}
					})
				}
			}
		}
	}
	if bodies == 0 {
		t.Fatal("no request bodies")
	}
	for s := range request {
		if response[s] && isObject(s) {
			t.Errorf("schema %q is used by requests and responses", s.Description)
		}
	}
}

// Every int64 a request carries as a string (path, query or body) has a
// pattern, and the pattern refuses a number past the int64 range, which the
// gateway refuses.
func TestRequestInt64StringsAreBounded(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	n := 0
	check := func(at string, s *openapi3.Schema, inURL bool) {
		if !s.Type.Is(openapi3.TypeString) || s.Format != "int64" {
			return
		}
		n++
		if s.Pattern == "" {
			t.Errorf("%s: an int64 string without a pattern", at)
			return
		}
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			t.Fatalf("%s: pattern %q: %v", at, s.Pattern, err)
		}
		for _, tc := range []struct {
			in   string
			want bool
		}{
			{"1", true},
			{"9223372036854775807", true},
			{"0009223372036854775807", inURL}, // strconv reads leading zeros, JSON numbers have none
			{"9223372036854775808", false},
			{"87382016793744179808463723", false},
			{"-1", false},
			{"", false},
		} {
			if got := re.MatchString(tc.in); got != tc.want {
				t.Errorf("%s: pattern matches %q: %v, want %v", at, tc.in, got, tc.want)
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for _, p := range op.Parameters {
				if p.Value != nil && p.Value.Schema != nil {
					check(method+" "+path+" "+p.Value.Name, p.Value.Schema.Value, true)
				}
			}
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Value.Content {
					visit(mt.Schema, method+" "+path, map[*openapi3.Schema]bool{}, func(at string, s *openapi3.Schema) {
						check(at, s, false)
						for name, p := range s.Properties {
							if v := p.Value; v != nil && len(v.OneOf) == 0 && (v.Format == "int64" || v.Format == "int32") {
								t.Errorf("%s.%s: an integer in one form; the gateway takes a number or a string", at, name)
							}
						}
						if len(s.OneOf) > 0 {
							numberAndString(t, at, s)
						}
					})
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no int64 strings in requests")
	}
}

// numberAndString checks a body's integer: a string of digits and a number,
// both bounded.
func numberAndString(t *testing.T, at string, s *openapi3.Schema) {
	t.Helper()
	if len(s.OneOf) != 2 {
		t.Errorf("%s: %d alternatives, want a string and a number", at, len(s.OneOf))
		return
	}
	str, num := s.OneOf[0].Value, s.OneOf[1].Value
	if !str.Type.Is(openapi3.TypeString) || str.Pattern == "" {
		t.Errorf("%s: first alternative %v, want a string with a pattern", at, str.Type)
	}
	if !num.Type.Is(openapi3.TypeInteger) || num.Min == nil || num.Max == nil {
		t.Errorf("%s: second alternative %v, want an integer with a minimum and a maximum", at, num.Type)
	}
}

// CreateStock's body field carries a CEL rule that its item's product_id
// be set: POST /stock requires product_id > 0. PUT /stock/{product_id}
// takes the same message, whose product_id is the path's there: readOnly,
// not required, 0 allowed.
func TestStockBodiesProductID(t *testing.T) {
	t.Parallel()
	doc := build(t, swagger(t))
	body := func(method, path string) *openapi3.Schema {
		t.Helper()
		op := doc.Paths.Value(path).GetOperation(method)
		return op.RequestBody.Value.Content.Get("application/json").Schema.Value
	}
	create, update := body("POST", "/stock"), body("PUT", "/stock/{product_id}")
	if !slices.Contains(create.Required, "product_id") {
		t.Errorf("POST /stock: required %v, want product_id in it", create.Required)
	}
	if slices.Contains(update.Required, "product_id") {
		t.Errorf("PUT /stock/{product_id}: required %v, want product_id left out", update.Required)
	}
	createID, updateID := create.Properties["product_id"].Value, update.Properties["product_id"].Value
	re := regexp.MustCompile(createID.OneOf[0].Value.Pattern)
	if re.MatchString("0") || !re.MatchString("1") {
		t.Errorf("POST /stock: product_id pattern %q, want > 0", re)
	}
	if num := createID.OneOf[1].Value; num.Min == nil || *num.Min != 1 || num.ExclusiveMin.Bool != nil {
		t.Errorf("POST /stock: product_id as a number: minimum %v, want 1", num.Min)
	}
	if !strings.Contains(createID.Description, "Required here") || createID.ReadOnly {
		t.Errorf("POST /stock: product_id %q (readOnly %v), want it required and writable", createID.Description, createID.ReadOnly)
	}
	if re := regexp.MustCompile(updateID.OneOf[0].Value.Pattern); !re.MatchString("0") {
		t.Errorf("PUT /stock/{product_id}: product_id pattern %q, want >= 0", re)
	}
	if !updateID.ReadOnly {
		t.Errorf("PUT /stock/{product_id}: product_id is not readOnly")
	}
	if p := update.Properties["product_name"].Value; p.ReadOnly {
		t.Errorf("PUT /stock/{product_id}: product_name is readOnly")
	}
}
