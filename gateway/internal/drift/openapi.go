package drift

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// document is as much of an OpenAPI 3.0 or 3.1 document as the check reads.
type document struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]*schema    `json:"schemas"`
		Parameters map[string]*parameter `json:"parameters"`
	} `json:"components"`
}

type operation struct {
	Parameters  []*parameter `json:"parameters"`
	RequestBody *struct {
		Required bool                 `json:"required"`
		Content  map[string]mediaType `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]mediaType `json:"content"`
	} `json:"responses"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type parameter struct {
	Ref      string  `json:"$ref"`
	Name     string  `json:"name"`
	In       string  `json:"in"`
	Required bool    `json:"required"`
	Schema   *schema `json:"schema"`
}

// schema is a JSON Schema as FastAPI (pydantic) writes it: a $ref, a type
// (one name, or a list in 3.1), properties, items, alternatives.
type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 typeNames          `json:"type"`
	Nullable             bool               `json:"nullable"`
	Format               string             `json:"format"`
	Enum                 []any              `json:"enum"`
	Const                any                `json:"const"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	Items                *schema            `json:"items"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	AnyOf                []*schema          `json:"anyOf"`
	OneOf                []*schema          `json:"oneOf"`
	AllOf                []*schema          `json:"allOf"`
}

// typeNames reads "type" as a string or a list of strings.
type typeNames []string

func (t *typeNames) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var l []string
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*t = l
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = typeNames{s}
	return nil
}

// MaxDocumentBytes bounds the OpenAPI document the check parses.
const MaxDocumentBytes = 4 << 20

// parse reads an OpenAPI 3 document.
func parse(doc []byte) (*document, error) {
	if len(doc) > MaxDocumentBytes {
		return nil, fmt.Errorf("OpenAPI document of %d bytes, more than %d", len(doc), MaxDocumentBytes)
	}
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		return nil, fmt.Errorf("OpenAPI document: version %q, want 3.x", d.OpenAPI)
	}
	return &d, nil
}

// operation returns the operation for an HTTP method on a path whose
// segments match parts (a variable matches a variable, whatever its name),
// and the document's path. ok is false when there is none.
func (d *document) operation(method string, parts []string) (op *operation, path string, err error) {
	key := strings.ToLower(method)
	for p, item := range d.Paths {
		raw, ok := item[key]
		if !ok || !samePath(p, parts) {
			continue
		}
		var o operation
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, p, fmt.Errorf("%s %s: %w", method, p, err)
		}
		// Parameters of the path item apply to every operation under it.
		if shared, ok := item["parameters"]; ok {
			var ps []*parameter
			if err := json.Unmarshal(shared, &ps); err == nil {
				o.Parameters = append(o.Parameters, ps...)
			}
		}
		for i, prm := range o.Parameters {
			if name, ok := strings.CutPrefix(prm.Ref, "#/components/parameters/"); ok && d.Components.Parameters[name] != nil {
				o.Parameters[i] = d.Components.Parameters[name]
			}
		}
		return &o, p, nil
	}
	return nil, "", nil
}

// samePath reports whether an OpenAPI path has the template's shape.
func samePath(path string, parts []string) bool {
	got := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(got) != len(parts) {
		return false
	}
	for i, p := range parts {
		gv, pv := isVar(got[i]), isVar(p)
		if gv != pv || (!gv && got[i] != p) {
			return false
		}
	}
	return true
}

func isVar(part string) bool { return strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") }

// param returns the operation's parameter in loc ("path", "query") called
// name, or nil.
func (o *operation) param(loc, name string) *parameter {
	for _, p := range o.Parameters {
		if p.In == loc && p.Name == name {
			return p
		}
	}
	return nil
}

// jsonSchema returns the schema of a JSON media type in content, or nil.
func jsonSchema(content map[string]mediaType) *schema {
	for ct, mt := range content {
		if ct == "application/json" || strings.HasPrefix(ct, "application/json;") {
			return mt.Schema
		}
	}
	return nil
}

// successSchema returns the JSON schema of the lowest 2xx response, and
// whether the operation declares a 2xx response at all.
func (o *operation) successSchema() (*schema, bool) {
	for code := http.StatusOK; code < 300; code++ {
		r, ok := o.Responses[fmt.Sprint(code)]
		if !ok {
			continue
		}
		return jsonSchema(r.Content), true
	}
	if r, ok := o.Responses["2XX"]; ok {
		return jsonSchema(r.Content), true
	}
	return nil, false
}

// resolve follows $ref (local component schemas) and folds a single-element
// allOf, as pydantic writes a $ref with siblings.
func (d *document) resolve(s *schema) *schema {
	for range 32 {
		switch {
		case s == nil:
			return nil
		case s.Ref != "":
			name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/")
			if !ok {
				return nil
			}
			s = d.Components.Schemas[name]
		case len(s.AllOf) == 1 && s.Type == nil && s.Properties == nil:
			s = s.AllOf[0]
		default:
			return s
		}
	}
	return nil
}

// alternatives returns the non-null schemas a value may match: the
// branches of anyOf/oneOf (nested ones flattened), or s itself.
func (d *document) alternatives(s *schema) []*schema {
	s = d.resolve(s)
	if s == nil {
		return nil
	}
	branches := append(append([]*schema(nil), s.AnyOf...), s.OneOf...)
	if len(branches) == 0 {
		if len(s.Type) == 1 && s.Type[0] == "null" {
			return nil
		}
		return []*schema{s}
	}
	var out []*schema
	for _, b := range branches {
		out = append(out, d.alternatives(b)...)
	}
	return out
}

// hasType reports whether s admits JSON type t: it names it, or names no
// type and has nothing that implies one (an unconstrained schema).
func (s *schema) hasType(t string) bool {
	if len(s.Type) == 0 {
		switch t {
		case "object":
			return true
		case "array":
			return s.Properties == nil
		default:
			return s.Properties == nil && s.Items == nil
		}
	}
	for _, n := range s.Type {
		if n == t {
			return true
		}
	}
	return false
}

// anyValue reports whether s admits any JSON value: no type, no
// structure, no alternatives.
func (s *schema) anyValue() bool {
	return len(s.Type) == 0 && s.Properties == nil && s.Items == nil && s.Enum == nil && s.Const == nil
}

// additional returns the schema of an object's additional properties: nil
// when they are not allowed or not declared, the empty schema for true.
func (s *schema) additional() *schema {
	raw := bytes.TrimSpace(s.AdditionalProperties)
	switch {
	case len(raw) == 0 || string(raw) == "false":
		return nil
	case string(raw) == "true":
		return &schema{}
	}
	var a schema
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil
	}
	return &a
}
