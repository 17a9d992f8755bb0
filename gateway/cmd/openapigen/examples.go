package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// requestExamples returns an error naming every request field without an
// example: each parameter of an operation, and each scalar property of a
// request body, however deep. Swagger UI fills its forms from these
// examples, so with one on every field the request it offers is complete;
// the examples themselves are checked against their schemas when the
// document is validated. A field gets its example in the proto:
// (grpc.gateway.protoc_gen_openapiv2.options.openapiv2_field) = {example: "..."}.
func requestExamples(doc *openapi3.T) error {
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			at := method + " " + path
			for _, p := range op.Parameters {
				if p.Ref != "" || p.Value == nil {
					continue
				}
				if p.Value.Example == nil && len(p.Value.Examples) == 0 {
					missing = append(missing, at+" parameter "+p.Value.Name)
				}
			}
			if op.RequestBody == nil || op.RequestBody.Value == nil {
				continue
			}
			for _, mt := range op.RequestBody.Value.Content {
				missing = append(missing, propertiesWithoutExample(doc, mt.Schema, at+" body", map[*openapi3.Schema]bool{})...)
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("request fields without an example (set one in the proto with openapiv2_field): %s", strings.Join(missing, ", "))
	}
	return nil
}

// propertiesWithoutExample lists the scalar properties under ref that have
// no example, by their path from at.
func propertiesWithoutExample(doc *openapi3.T, ref *openapi3.SchemaRef, at string, seen map[*openapi3.Schema]bool) []string {
	if ref == nil {
		return nil
	}
	s := ref.Value
	if name, ok := strings.CutPrefix(ref.Ref, schemaRefPrefix); ok {
		if c := doc.Components.Schemas[name]; c != nil {
			s = c.Value
		}
	}
	if s == nil || seen[s] {
		return nil
	}
	seen[s] = true
	var out []string
	switch {
	case len(s.Properties) > 0:
		for name, p := range s.Properties {
			out = append(out, propertiesWithoutExample(doc, p, at+"."+name, seen)...)
		}
	case s.Type.Is(openapi3.TypeArray):
		out = append(out, propertiesWithoutExample(doc, s.Items, at+"[]", seen)...)
	case s.Example == nil && !s.ReadOnly:
		out = append(out, at)
	}
	return out
}
