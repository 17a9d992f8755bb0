package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/protofields"
)

// schemaRefPrefix starts every reference to a component schema.
const schemaRefPrefix = "#/components/schemas/"

// inputSuffix names the request copy of a schema that responses use too.
const inputSuffix = "Input"

// requestBodies makes the request side of the document say what the gateway
// enforces on bodies: every object a request body holds refuses properties
// it does not name (additionalProperties: false), as the gateway refuses
// unknown fields with 400. Response schemas stay open, since an answer may
// gain fields; a component schema used both ways gets a request copy named
// with inputSuffix ("StockItemInput"). It also states the CEL rules of a
// body field that require a field of its message to be set
// ("this.product_id != 0" on CreateStockRequest.item), on that operation's
// body alone.
type requestBodies struct {
	schemas  openapi3.Schemas
	response map[string]bool // component schemas some response uses
	closed   map[string]bool // component schemas already made strict
	// stated are the fields whose CEL rules the document states.
	stated map[protoreflect.FullName]bool
}

func newRequestBodies(doc *openapi3.T) *requestBodies {
	g := &requestBodies{
		schemas:  doc.Components.Schemas,
		response: map[string]bool{},
		closed:   map[string]bool{},
		stated:   map[protoreflect.FullName]bool{},
	}
	var walk func(ref *openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil {
			return
		}
		if name, ok := strings.CutPrefix(ref.Ref, schemaRefPrefix); ok {
			if g.response[name] {
				return
			}
			g.response[name] = true
			ref = g.schemas[name]
			if ref == nil {
				return
			}
		}
		if s := ref.Value; s != nil {
			for _, p := range s.Properties {
				walk(p)
			}
			walk(s.Items)
			walk(s.AdditionalProperties.Schema)
			for _, list := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
				for _, sub := range list {
					walk(sub)
				}
			}
		}
	}
	walkContent := func(r *openapi3.ResponseRef) {
		if r == nil || r.Value == nil {
			return
		}
		for _, mt := range r.Value.Content {
			walk(mt.Schema)
		}
	}
	for _, r := range doc.Components.Responses {
		walkContent(r)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				walkContent(r)
			}
		}
	}
	return g
}

// body makes the request body of op, one binding b of md, strict, and
// states the CEL rules of its body field.
func (g *requestBodies) body(op *openapi3.Operation, md protoreflect.MethodDescriptor, b httprule.Binding) error {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return nil
	}
	var fd protoreflect.FieldDescriptor
	if b.Body != "" && b.Body != "*" {
		fd = md.Input().Fields().ByName(protoreflect.Name(b.Body))
	}
	required := false
	for _, mt := range op.RequestBody.Value.Content {
		if mt.Schema == nil {
			continue
		}
		if fd != nil {
			tightened, err := g.requireSet(mt.Schema, fd)
			if err != nil {
				return fmt.Errorf("%s: %w", md.FullName(), err)
			}
			mt.Schema = tightened
			mt.Schema = g.pathFieldsReadOnly(mt.Schema, fd, b)
		}
		mt.Schema = g.strict(mt.Schema)
		if s := g.resolve(mt.Schema); s != nil && len(s.Required) > 0 {
			required = true
		}
	}
	// A body is required when a field in it is: the gateway takes no body
	// as an empty message ({}), which is complete when nothing is required.
	op.RequestBody.Value.Required = required || (fd != nil && fieldRules(fd).required)
	return nil
}

// resolve returns the schema ref stands for.
func (g *requestBodies) resolve(ref *openapi3.SchemaRef) *openapi3.Schema {
	if name, ok := strings.CutPrefix(ref.Ref, schemaRefPrefix); ok {
		if c := g.schemas[name]; c != nil {
			return c.Value
		}
		return nil
	}
	return ref.Value
}

// strict returns the request form of ref: an inline object closed in place,
// a component schema closed in place when only requests use it, else a
// reference to its closed request copy.
func (g *requestBodies) strict(ref *openapi3.SchemaRef) *openapi3.SchemaRef {
	if ref == nil {
		return nil
	}
	name, ok := strings.CutPrefix(ref.Ref, schemaRefPrefix)
	if !ok {
		if ref.Value != nil {
			g.close(ref.Value)
		}
		return ref
	}
	src := g.schemas[name]
	if src == nil || src.Value == nil || !isObject(src.Value) {
		return ref
	}
	target := name
	if g.response[name] {
		target = name + inputSuffix
	}
	if !g.closed[target] {
		g.closed[target] = true
		s := src.Value
		if target != name {
			s = copyObject(src.Value)
			s.Description = strings.TrimSpace(s.Description + "\n\nThe request form of " + name + ": no other properties are accepted.")
			g.schemas[target] = &openapi3.SchemaRef{Value: s}
		}
		g.close(s)
	}
	return &openapi3.SchemaRef{Ref: schemaRefPrefix + target}
}

// close sets additionalProperties: false on the object s (unless it is a
// map, whose additionalProperties is its value schema) and makes the
// schemas of its properties and items strict too.
func (g *requestBodies) close(s *openapi3.Schema) {
	if isObject(s) && s.AdditionalProperties.Schema == nil {
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.BoolPtr(false)}
	}
	for k, p := range s.Properties {
		if u := numberOrString(p); u != nil {
			s.Properties[k] = u
			continue
		}
		s.Properties[k] = g.strict(p)
	}
	s.Items = g.strict(s.Items)
}

// numberOrString returns, for an integer property of a request body, the
// schema of both forms the gateway reads (protojson takes an integer as a
// JSON number or as a string): an int64, which the document writes as a
// string, or an int32, which it writes as a number. Both forms carry the
// field's bounds. It returns nil for any other property.
func numberOrString(p *openapi3.SchemaRef) *openapi3.SchemaRef {
	if p == nil || p.Ref != "" || p.Value == nil {
		return nil
	}
	v := p.Value
	num := openapi3.NewIntegerSchema()
	str := openapi3.NewStringSchema()
	switch {
	case v.Type.Is(openapi3.TypeString) && v.Format == "int64":
		str.Format, str.Pattern = v.Format, v.Pattern
		num.Format, num.Min, num.ExclusiveMin, num.Max, num.ExclusiveMax = v.Format, v.Min, v.ExclusiveMin, v.Max, v.ExclusiveMax
		num.Extensions = maps.Clone(v.Extensions)
		if num.Max == nil {
			num.Max = openapi3.Float64Ptr(math.MaxInt64)
			setExtension(num, extExactMaximum, exactInt(math.MaxInt64))
		}
	case v.Type.Is(openapi3.TypeInteger) && v.Format == "int32":
		num.Format, num.Min, num.ExclusiveMin, num.Max, num.ExclusiveMax = v.Format, v.Min, v.ExclusiveMin, v.Max, v.ExclusiveMax
		num.Extensions = maps.Clone(v.Extensions)
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if v.Min != nil {
			lo = int64(math.Ceil(*v.Min))
			if v.ExclusiveMin.Bool != nil && *v.ExclusiveMin.Bool {
				lo++
			}
		}
		if v.Max != nil {
			hi = int64(math.Floor(*v.Max))
			if v.ExclusiveMax.Bool != nil && *v.ExclusiveMax.Bool {
				hi--
			}
		}
		str.Format, str.Pattern = v.Format, decimalPattern(lo, hi, inJSON)
		if str.Pattern == "" {
			return nil
		}
		if num.Max == nil {
			num.Max = openapi3.Float64Ptr(math.MaxInt32)
		}
	default:
		return nil
	}
	return &openapi3.SchemaRef{Value: &openapi3.Schema{
		Description: v.Description,
		ReadOnly:    v.ReadOnly,
		Example:     v.Example,
		OneOf:       openapi3.SchemaRefs{str.NewRef(), num.NewRef()},
	}}
}

// requireSet states the CEL rules of the body field fd that require a field
// of its message to be set (not 0): the body schema becomes an inline copy
// in which that field is required and, where its own rules allow 0, greater
// than 0. A CEL rule of another form is an error, since the document could
// not state it.
func (g *requestBodies) requireSet(body *openapi3.SchemaRef, fd protoreflect.FieldDescriptor) (*openapi3.SchemaRef, error) {
	r := fieldRules(fd)
	if len(r.unstated) > 0 {
		return nil, fmt.Errorf("field %s has CEL rules the document cannot state: %q", fd.Name(), r.unstated)
	}
	if len(r.set) == 0 {
		return body, nil
	}
	if fd.Message() == nil {
		return nil, fmt.Errorf("field %s: a CEL rule on a field of its fields needs a message field", fd.Name())
	}
	src := body.Value
	if name, ok := strings.CutPrefix(body.Ref, schemaRefPrefix); ok && g.schemas[name] != nil {
		src = g.schemas[name].Value
	}
	if src == nil {
		return nil, fmt.Errorf("field %s: no schema for its body", fd.Name())
	}
	s := copyObject(src)
	for _, name := range r.set {
		nested := fd.Message().Fields().ByName(protoreflect.Name(name))
		prop := s.Properties[name]
		if nested == nil || prop == nil || prop.Value == nil || nested.Kind() != protoreflect.Int64Kind {
			return nil, fmt.Errorf("field %s: its CEL rule names %q, which is no int64 field of %s", fd.Name(), name, fd.Message().FullName())
		}
		nr := fieldRules(nested)
		if nr.intMin == nil || *nr.intMin != 0 || nr.exclMin {
			return nil, fmt.Errorf("field %s: its CEL rule requires %q to be set, which the document states only for a field of >= 0", fd.Name(), name)
		}
		nr.exclMin = true // >= 0 and not 0
		v := *prop.Value
		v.Pattern = ""
		nr.apply(&v)
		v.Description = strings.TrimSpace(v.Description + " Required here, and greater than 0.")
		s.Properties[name] = &openapi3.SchemaRef{Value: &v}
		if !slices.Contains(s.Required, name) {
			s.Required = append(s.Required, name)
		}
	}
	sort.Strings(s.Required)
	g.stated[fd.FullName()] = true
	return &openapi3.SchemaRef{Value: s}, nil
}

// pathFieldsReadOnly marks, in the body of a binding that binds field fd to
// the body, the properties that have the name of a path parameter as
// readOnly: PUT /stock/{product_id} takes the id from the path, and the
// item's own product_id, when sent, must equal it (the service refuses
// another), which a schema cannot say of two parameters. The body becomes an
// inline copy for that operation.
func (g *requestBodies) pathFieldsReadOnly(body *openapi3.SchemaRef, fd protoreflect.FieldDescriptor, b httprule.Binding) *openapi3.SchemaRef {
	src := g.resolve(body)
	if src == nil || fd.Message() == nil {
		return body
	}
	var s *openapi3.Schema
	for _, v := range pathParam.FindAllString(b.Template, -1) {
		name := strings.Trim(v, "{}")
		if i := strings.IndexAny(name, "=."); i >= 0 {
			name = name[:i]
		}
		prop := src.Properties[name]
		if prop == nil || prop.Value == nil || fd.Message().Fields().ByName(protoreflect.Name(name)) == nil {
			continue
		}
		if s == nil {
			s = copyObject(src)
		}
		v := *prop.Value
		v.ReadOnly = true
		// Not to be sent: an example would show a client a value to send.
		v.Example = nil
		v.Description = strings.TrimSpace(v.Description + " Taken from the path here: leave it out, or give the same value.")
		s.Properties[name] = &openapi3.SchemaRef{Value: &v}
		s.Required = slices.DeleteFunc(s.Required, func(r string) bool { return r == name })
	}
	if s == nil {
		return body
	}
	return &openapi3.SchemaRef{Value: s}
}

// unstated returns an error naming every field of the services' request
// messages whose CEL rules the document does not state: a rule anywhere but
// on a body field that body described.
func (g *requestBodies) unstated(svcs []protoreflect.ServiceDescriptor) error {
	var bad []string
	for _, sd := range svcs {
		for i := 0; i < sd.Methods().Len(); i++ {
			protofields.EachField(sd.Methods().Get(i).Input(), func(fd protoreflect.FieldDescriptor) {
				if r := fieldRules(fd); (len(r.set) > 0 || len(r.unstated) > 0) && !g.stated[fd.FullName()] {
					bad = append(bad, string(fd.FullName()))
				}
			})
		}
	}
	bad = slices.Compact(slices.Sorted(slices.Values(bad)))
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("CEL rules that the document does not state, on %s", strings.Join(bad, ", "))
	}
	return nil
}

// isObject reports whether s describes a JSON object.
func isObject(s *openapi3.Schema) bool {
	return s.Type.Is(openapi3.TypeObject) || len(s.Properties) > 0
}

// copyObject copies s deep enough to change its properties, required list
// and additionalProperties without changing s.
func copyObject(s *openapi3.Schema) *openapi3.Schema {
	c := *s
	c.Properties = maps.Clone(s.Properties)
	c.Required = slices.Clone(s.Required)
	return &c
}

// responsesRequireAll marks every property of the object schemas that
// responses use as required: the gateway answers with every field (0, ""
// and [] included, see the REST marshaler), so a generated client need not
// make any of them optional.
func (g *requestBodies) responsesRequireAll() {
	for name := range g.response {
		ref := g.schemas[name]
		if ref == nil || ref.Value == nil || len(ref.Value.Properties) == 0 {
			continue
		}
		ref.Value.Required = slices.Sorted(maps.Keys(ref.Value.Properties))
	}
}
