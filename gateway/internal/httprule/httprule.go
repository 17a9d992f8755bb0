// Package httprule reads the google.api.http rules of RPC descriptors and
// compiles their path templates: the descriptor helpers that the REST edge,
// the forwarder and the event specs share. It is a leaf: it imports only the
// protobuf runtime and protofields.
package httprule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/shopgateway/shop/gateway/internal/protofields"
)

// FullMethod returns the gRPC full method name of md, "/pkg.Service/Method".
func FullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// Streaming reports whether md streams (the Watch RPCs): such a method is
// served by the gateway itself from Kafka, never forwarded to a service.
func Streaming(md protoreflect.MethodDescriptor) bool {
	return md.IsStreamingServer() || md.IsStreamingClient()
}

// Binding is one HTTP binding of an RPC: its method and path template.
type Binding struct {
	// Method is the HTTP method, for example "GET".
	Method string
	// Template is the path template, for example "/stock/{product_id}".
	Template string
	// Body is the request field bound to the body: "" (none), "*" (all) or a
	// field name.
	Body string
	// ResponseBody is the response field written as the HTTP body; "" means
	// the whole response message.
	ResponseBody string
}

// Bindings returns the google.api.http bindings of a method: the primary
// binding first, then the additional ones. A method without the option has
// none.
func Bindings(md protoreflect.MethodDescriptor) []Binding {
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
		return nil
	}
	rule, ok := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
	if !ok || rule == nil {
		return nil
	}
	out := []Binding{binding(rule, rule.GetResponseBody())}
	for _, add := range rule.GetAdditionalBindings() {
		out = append(out, binding(add, rule.GetResponseBody()))
	}
	return out
}

func binding(rule *annotations.HttpRule, responseBody string) Binding {
	b := Binding{Body: rule.GetBody(), ResponseBody: responseBody}
	if rule.GetResponseBody() != "" {
		b.ResponseBody = rule.GetResponseBody()
	}
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		b.Method, b.Template = http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		b.Method, b.Template = http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		b.Method, b.Template = http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		b.Method, b.Template = http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		b.Method, b.Template = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		b.Method, b.Template = p.Custom.GetKind(), p.Custom.GetPath()
	}
	return b
}

// segment is one piece of a compiled path template: a literal (with its
// leading slash) or a variable bound to a request field.
type segment struct {
	literal string
	field   protoreflect.FieldDescriptor
	path    protofields.Path
}

// Template is a compiled path template.
type Template struct {
	segments []segment
	// Parts are the '/'-separated pieces of the template, with variables as
	// "{name}", used for matching incoming paths.
	Parts []string
	// Vars are the top-level request fields bound by the path.
	Vars map[protoreflect.Name]bool
	// fields holds, per part index, the field the variable there is bound
	// to (the last of its path).
	fields map[int]protoreflect.FieldDescriptor
}

// Field returns the request field bound by the variable at Parts[i], or nil
// when that part is a literal.
func (t *Template) Field(i int) protoreflect.FieldDescriptor { return t.fields[i] }

// CompileTemplate compiles a path template such as "/cart/{user_id}" against
// the request message. Variables may use a dotted field path and an optional
// "=pattern", which is accepted but matched as a single segment.
func CompileTemplate(tmpl string, req protoreflect.MessageDescriptor) (*Template, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, fmt.Errorf("template %q: must start with /", tmpl)
	}
	if i := strings.LastIndex(tmpl, ":"); i > strings.LastIndex(tmpl, "}") && i > strings.LastIndex(tmpl, "/") {
		return nil, fmt.Errorf("template %q: custom verbs are not supported", tmpl)
	}
	t := &Template{Vars: map[protoreflect.Name]bool{}, fields: map[int]protoreflect.FieldDescriptor{}}
	var lit strings.Builder
	for _, part := range strings.Split(tmpl[1:], "/") {
		t.Parts = append(t.Parts, part)
		if !strings.HasPrefix(part, "{") {
			lit.WriteString("/")
			lit.WriteString(part)
			continue
		}
		if !strings.HasSuffix(part, "}") {
			return nil, fmt.Errorf("template %q: variable %q must fill its segment", tmpl, part)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(part, "{"), "}")
		if i := strings.IndexByte(name, '='); i >= 0 {
			name = name[:i]
		}
		p, err := protofields.Compile(req, name)
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", tmpl, err)
		}
		lit.WriteString("/")
		t.segments = append(t.segments, segment{literal: lit.String()}, segment{field: p[len(p)-1], path: p})
		lit.Reset()
		t.Vars[p[0].Name()] = true
		t.fields[len(t.Parts)-1] = p[len(p)-1]
	}
	if lit.Len() > 0 {
		t.segments = append(t.segments, segment{literal: lit.String()})
	}
	return t, nil
}

// AppendPath writes the path of the template for the request message m to b:
// the literals as they are and each variable's value path-escaped. A bound
// field that is not set is an error naming the field.
func (t *Template) AppendPath(b *strings.Builder, m protoreflect.Message) error {
	for _, s := range t.segments {
		if s.field == nil {
			b.WriteString(s.literal)
			continue
		}
		v, ok := s.path.Value(m)
		if !ok {
			return fmt.Errorf("%s is required", s.field.Name())
		}
		b.WriteString(url.PathEscape(protofields.FormatScalar(s.field, v)))
	}
	return nil
}

// Match reports whether a request path (without query) fits the template:
// same number of segments, equal literals, and integers where an integer
// field is bound.
func (t *Template) Match(path string) bool {
	if !strings.HasPrefix(path, "/") {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(path[1:], "/"), "/")
	if len(parts) != len(t.Parts) {
		return false
	}
	for i, p := range t.Parts {
		if strings.HasPrefix(p, "{") {
			if parts[i] == "" || (t.fields[i] != nil && isInt(t.fields[i].Kind()) && !isDigits(parts[i])) {
				return false
			}
			continue
		}
		if p != parts[i] {
			return false
		}
	}
	return true
}

func isInt(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

func isDigits(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
