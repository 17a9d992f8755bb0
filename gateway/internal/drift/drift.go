// Package drift checks that a service still speaks the proto: for every RPC
// the gateway forwards to it (forward.Plans), the service's own OpenAPI
// document must declare the operation (HTTP method and path), accept every
// field the gateway sends (path, query and JSON body, with a compatible
// JSON type) and require none it does not send, and declare in its success
// response every field the gateway reads. The services' models are written
// by hand and ignore unknown fields, so without this check a renamed field
// is dropped in silence.
//
// One comparison serves both callers: `make check-contract` (command
// contractcheck, on the documents the services' apps generate offline) and
// the gateway at start-up (each instance's GET /openapi.json, see Watch).
package drift

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/forward"
)

// Problem is one difference between what the gateway does for an RPC and
// what the service declares.
type Problem struct {
	// RPC is the method's full name, "shop.stock.v1.StockService.GetStock".
	RPC string
	// Text says what differs.
	Text string
}

func (p Problem) String() string { return p.RPC + ": " + p.Text }

// Check compares the plans routed to upstream with that service's OpenAPI 3
// document and returns the problems, sorted. The error is for a document
// that cannot be read.
func Check(plans []forward.Plan, upstream string, doc []byte) ([]Problem, error) {
	d, err := parse(doc)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for i := range plans {
		p := &plans[i]
		if p.Upstream != upstream {
			continue
		}
		c := &checker{d: d}
		c.plan(p)
		for _, t := range c.problems {
			out = append(out, Problem{RPC: string(p.RPC.FullName()), Text: t})
		}
	}
	slices.SortStableFunc(out, func(a, b Problem) int { return strings.Compare(a.RPC, b.RPC) })
	return out, nil
}

// direction says who writes a value: the gateway (sent to the service) or
// the service (read by the gateway).
type direction int

const (
	send direction = iota
	read
)

// checker collects the problems of one plan.
type checker struct {
	d        *document
	problems []string
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) plan(p *forward.Plan) {
	route := p.HTTPMethod + " /" + strings.Join(p.Template.Parts, "/")
	op, docPath, err := c.d.operation(p.HTTPMethod, p.Template.Parts)
	if err != nil {
		c.addf("%s: %v", route, err)
		return
	}
	if op == nil {
		c.addf("%s: the service declares no such operation", route)
		return
	}
	docParts := strings.Split(strings.TrimPrefix(docPath, "/"), "/")
	for i, part := range p.Template.Parts {
		fd := p.Template.Field(i)
		if fd == nil {
			continue
		}
		name := strings.Trim(docParts[i], "{}")
		prm := op.param("path", name)
		if prm == nil {
			c.addf("%s: path variable %s (field %s) is not a declared path parameter", route, part, fd.Name())
			continue
		}
		c.field("path parameter "+name, fd, prm.Schema, send, true)
	}
	sent := map[string]bool{}
	for _, fd := range p.Query {
		name := string(fd.Name())
		sent[name] = true
		prm := op.param("query", name)
		if prm == nil {
			c.addf("%s: query parameter %s is sent but not declared", route, name)
			continue
		}
		c.field("query parameter "+name, fd, prm.Schema, send, true)
	}
	for _, prm := range op.Parameters {
		if prm.In == "query" && prm.Required && !sent[prm.Name] {
			c.addf("%s: the service requires query parameter %s, which the gateway never sends", route, prm.Name)
		}
	}
	if body := p.Body(); body != nil {
		var s *schema
		if op.RequestBody != nil {
			s = jsonSchema(op.RequestBody.Content)
		}
		if s == nil {
			c.addf("%s: the gateway sends a JSON body (%s), the service declares none", route, body.FullName())
		} else {
			c.object("request body", body, s, send)
		}
	} else if op.RequestBody != nil && op.RequestBody.Required {
		c.addf("%s: the service requires a request body, the gateway sends none", route)
	}
	resp := p.Response()
	if resp.Fields().Len() == 0 {
		return
	}
	s, ok := op.successSchema()
	switch {
	case !ok:
		c.addf("%s: the service declares no 2xx response", route)
	case s == nil:
		c.addf("%s: the service's 2xx response has no JSON schema; the gateway reads %s from it", route, resp.FullName())
	default:
		c.object("response", resp, s, read)
	}
}

// object checks a message against the object schema s.
func (c *checker) object(where string, md protoreflect.MessageDescriptor, s *schema, dir direction) {
	var obj *schema
	for _, alt := range c.d.alternatives(s) {
		if alt.hasType("object") {
			obj = alt
			break
		}
	}
	if obj == nil {
		c.addf("%s: the service declares no object, the proto has message %s", where, md.FullName())
		return
	}
	if obj.Properties == nil {
		// A free-form object takes any field.
		return
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := string(fd.Name())
		ps, ok := obj.Properties[name]
		if !ok {
			if dir == send {
				c.addf("%s: field %s is sent but the service does not declare it", where, name)
			} else {
				c.addf("%s: field %s is read but the service does not declare it", where, name)
			}
			continue
		}
		c.field(where+"."+name, fd, ps, dir, false)
	}
	if dir == send {
		for _, r := range obj.Required {
			if fields.ByName(protoreflect.Name(r)) == nil {
				c.addf("%s: the service requires field %s, which the proto does not have", where, r)
			}
		}
	}
}

// field checks one field (repeated and map included) against s. param is
// set for path and query parameters, whose values are text.
func (c *checker) field(where string, fd protoreflect.FieldDescriptor, s *schema, dir direction, param bool) {
	alts, ok := c.constrained(where, s)
	if !ok {
		return
	}
	switch {
	case fd.IsMap():
		for _, a := range alts {
			if a.hasType("object") {
				if v := a.additional(); v != nil {
					c.value(where+"{}", fd.MapValue(), v, dir, false)
				}
				return
			}
		}
		c.addf("%s: the service declares %s, the proto a map", where, typesOf(alts))
	case fd.IsList():
		for _, a := range alts {
			if a.hasType("array") {
				if a.Items != nil {
					c.value(where+"[]", fd, a.Items, dir, param)
				}
				return
			}
		}
		if param {
			// A repeated query parameter may be declared by its element.
			c.value(where, fd, s, dir, param)
			return
		}
		c.addf("%s: the service declares %s, the proto a repeated field", where, typesOf(alts))
	default:
		c.value(where, fd, s, dir, param)
	}
}

// constrained returns the alternatives of s, and false when there is
// nothing to check: no schema, one that admits anything, or (a problem)
// one that admits only null.
func (c *checker) constrained(where string, s *schema) ([]*schema, bool) {
	if s == nil {
		return nil, false
	}
	alts := c.d.alternatives(s)
	if len(alts) == 0 {
		c.addf("%s: the service declares only null", where)
		return nil, false
	}
	return alts, !(len(alts) == 1 && alts[0].anyValue())
}

// value checks one singular value of fd's type against s.
func (c *checker) value(where string, fd protoreflect.FieldDescriptor, s *schema, dir direction, param bool) {
	alts, ok := c.constrained(where, s)
	if !ok {
		return
	}
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		if want, ok := wellKnown[fd.Message().FullName()]; ok {
			c.scalar(where, want, alts, fd.Message().FullName(), param)
			return
		}
		c.object(where, fd.Message(), s, dir)
		return
	}
	want := jsonTypes(fd.Kind(), dir)
	if c.scalar(where, want, alts, protoreflect.FullName(fd.Kind().String()), param) && fd.Kind() == protoreflect.EnumKind && dir == read {
		for _, a := range alts {
			for _, v := range a.Enum {
				name, ok := v.(string)
				if ok && fd.Enum().Values().ByName(protoreflect.Name(name)) == nil {
					c.addf("%s: the service may answer %q, which is not a value of %s", where, name, fd.Enum().FullName())
				}
			}
		}
	}
}

// scalar checks that one of alts admits one of the JSON types in want (for
// a parameter, a string admits anything: the value is text).
func (c *checker) scalar(where string, want []string, alts []*schema, protoType protoreflect.FullName, param bool) bool {
	if param {
		want = append(want, "string")
	}
	for _, a := range alts {
		for _, w := range want {
			if a.hasType(w) {
				return true
			}
		}
	}
	c.addf("%s: the service declares %s, the proto %s (JSON %s)", where, typesOf(alts), protoType, strings.Join(want, " or "))
	return false
}

// jsonTypes are the JSON types of a proto scalar under the proto3 JSON
// mapping that a schema must admit. The gateway writes 64-bit integers as
// strings, which the services read as integers; it reads numbers or strings.
func jsonTypes(k protoreflect.Kind, dir direction) []string {
	switch k {
	case protoreflect.BoolKind:
		return []string{"boolean"}
	case protoreflect.StringKind, protoreflect.BytesKind:
		return []string{"string"}
	case protoreflect.EnumKind:
		if dir == read {
			return []string{"string", "integer"}
		}
		return []string{"string"}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if dir == read {
			return []string{"number", "integer"}
		}
		return []string{"number"}
	default:
		return []string{"integer"}
	}
}

// wellKnown are the JSON types of the well-known types the proto3 JSON
// mapping writes as scalars.
var wellKnown = map[protoreflect.FullName][]string{
	"google.protobuf.Timestamp":   {"string"},
	"google.protobuf.Duration":    {"string"},
	"google.protobuf.FieldMask":   {"string"},
	"google.protobuf.StringValue": {"string"},
	"google.protobuf.BytesValue":  {"string"},
	"google.protobuf.BoolValue":   {"boolean"},
	"google.protobuf.Int32Value":  {"integer"},
	"google.protobuf.Int64Value":  {"integer"},
	"google.protobuf.UInt32Value": {"integer"},
	"google.protobuf.UInt64Value": {"integer"},
	"google.protobuf.FloatValue":  {"number"},
	"google.protobuf.DoubleValue": {"number"},
	"google.protobuf.Struct":      {"object"},
	"google.protobuf.ListValue":   {"array"},
	"google.protobuf.Value":       {"object", "array", "string", "number", "boolean", "null"},
}

// typesOf names the JSON types of alts, for messages.
func typesOf(alts []*schema) string {
	var names []string
	for _, a := range alts {
		switch {
		case len(a.Type) > 0:
			names = append(names, a.Type...)
		case a.Properties != nil:
			names = append(names, "object")
		default:
			names = append(names, "any")
		}
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), " or ")
}
