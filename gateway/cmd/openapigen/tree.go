package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The last stage of Build works on the document as a JSON tree (numbers kept
// as json.Number), for what kin-openapi's types cannot say: integer bounds
// beyond float64's precision, and references to be renamed or counted.

// Extensions that carry an integer bound exactly, as a decimal string, from
// the schema where a rule is applied to the tree stage, which writes it as
// the schema's minimum or maximum and removes the extension.
const (
	extExactMinimum = "x-exact-minimum"
	extExactMaximum = "x-exact-maximum"
)

// renamedSchemas are component schemas whose names clash with names that
// generated clients use themselves: a model named Any shadows Python's
// typing.Any in openapi-python-client's output.
var renamedSchemas = map[string]string{"Any": "GoogleProtobufAny"}

// finish applies the tree stage to the marshalled document raw.
func finish(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	renameSchemas(doc, renamedSchemas)
	walkSchemas(doc, exactBounds)
	dropUnused(doc)
	return json.Marshal(doc)
}

// walkSchemas calls fn for every object of the tree that is a schema: one
// with a string "type" (the value of a property named "type" is an object,
// not a string).
func walkSchemas(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["type"].(string); ok {
			fn(v)
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			walkSchemas(v[k], fn)
		}
	case []any:
		for _, e := range v {
			walkSchemas(e, fn)
		}
	}
}

// exactBounds keeps minimum and maximum on numeric schemas only (a string
// holding an int64 states its bounds in its pattern; minimum does not apply
// to a string, and generators warn about it), and writes the bounds of an
// integer exactly, from the extensions, rather than through float64
// (9223372036854775807 would print as 9223372036854776000).
func exactBounds(s map[string]any) {
	typ := s["type"].(string)
	for _, b := range []struct{ ext, key, excl string }{
		{extExactMinimum, "minimum", "exclusiveMinimum"},
		{extExactMaximum, "maximum", "exclusiveMaximum"},
	} {
		exact, hasExact := s[b.ext].(string)
		delete(s, b.ext)
		switch {
		case typ != "integer" && typ != "number":
			delete(s, b.key)
			delete(s, b.excl)
		case typ == "integer" && hasExact:
			s[b.key] = json.Number(exact)
			delete(s, b.excl)
		}
	}
}

// renameSchemas renames component schemas (old name -> new name) and every
// reference to them.
func renameSchemas(doc map[string]any, names map[string]string) {
	schemas := componentsOf(doc, "schemas")
	for from, to := range names {
		if s, ok := schemas[from]; ok {
			delete(schemas, from)
			schemas[to] = s
		}
	}
	eachRef(doc, func(obj map[string]any, ref string) {
		if name, ok := strings.CutPrefix(ref, schemaRefPrefix); ok {
			if to, ok := names[name]; ok {
				obj["$ref"] = schemaRefPrefix + to
			}
		}
	})
}

// dropUnused removes the components that nothing under paths refers to,
// directly or through other components (the gRPC response wrappers whose
// REST answer is one of their fields, for one), so that generators make no
// types nobody uses. Security schemes are kept: requirements name them
// without a reference.
func dropUnused(doc map[string]any) {
	used := map[string]bool{}
	var follow func(v any)
	follow = func(v any) {
		eachRef(v, func(_ map[string]any, ref string) {
			if used[ref] {
				return
			}
			used[ref] = true
			if kind, name, ok := componentRef(ref); ok {
				follow(componentsOf(doc, kind)[name])
			}
		})
	}
	follow(doc["paths"])
	components, _ := doc["components"].(map[string]any)
	for kind, v := range components {
		if kind == "securitySchemes" {
			continue
		}
		group, _ := v.(map[string]any)
		for name := range group {
			if !used["#/components/"+kind+"/"+name] {
				delete(group, name)
			}
		}
		if len(group) == 0 {
			delete(components, kind)
		}
	}
}

// componentRef splits "#/components/KIND/NAME".
func componentRef(ref string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, "#/components/")
	if !ok {
		return "", "", false
	}
	kind, name, ok = strings.Cut(rest, "/")
	return kind, name, ok
}

// componentsOf returns components[kind], or nil.
func componentsOf(doc map[string]any, kind string) map[string]any {
	components, _ := doc["components"].(map[string]any)
	group, _ := components[kind].(map[string]any)
	return group
}

// eachRef calls fn for every object of v with a string "$ref", in a stable
// order.
func eachRef(v any, fn func(obj map[string]any, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			fn(v, ref)
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			eachRef(v[k], fn)
		}
	case []any:
		for _, e := range v {
			eachRef(e, fn)
		}
	}
}

// exactInt returns the extension value of an exact integer bound.
func exactInt(n int64) string { return strconv.FormatInt(n, 10) }
