package forward

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/httprule"
)

// Plan is the upstream HTTP call that an RPC becomes: what the forwarder
// sends and what it reads back. The contract-drift check compares it with
// each service's own API description.
type Plan struct {
	// RPC is the method.
	RPC protoreflect.MethodDescriptor
	// Upstream names the service that owns it (ServiceA, ServiceB).
	Upstream string
	// HTTPMethod and Template are the RPC's primary google.api.http
	// binding: the services serve the same routes as the public API.
	HTTPMethod string
	Template   *httprule.Template
	// BodyAll: the whole request is the JSON body.
	BodyAll bool
	// BodyField is the request field sent as the JSON body; nil when the
	// body is the whole request or there is none.
	BodyField protoreflect.FieldDescriptor
	// Query are the request fields sent in the query string (when set).
	Query []protoreflect.FieldDescriptor
	// ResponseField is the response field the answer is read into; nil
	// when the answer is the whole response.
	ResponseField protoreflect.FieldDescriptor
}

// Body returns the message sent as the JSON body, or nil for none.
func (p *Plan) Body() protoreflect.MessageDescriptor {
	switch {
	case p.BodyAll:
		return p.RPC.Input()
	case p.BodyField != nil:
		return p.BodyField.Message()
	}
	return nil
}

// Response returns the message the service's JSON answer is read into.
func (p *Plan) Response() protoreflect.MessageDescriptor {
	if p.ResponseField != nil {
		return p.ResponseField.Message()
	}
	return p.RPC.Output()
}

// Plans returns the plan of every method of services that table routes, in
// declaration order. A method without a route is left out (New refuses
// it); every other problem New would report is an error here too.
func Plans(services []protoreflect.ServiceDescriptor, table Table) ([]Plan, error) {
	var out []Plan
	var errs []error
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			rt, ok := table[md.FullName()]
			if !ok || httprule.Streaming(md) {
				continue
			}
			p, err := planOf(md, rt)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	return out, nil
}

func planOf(md protoreflect.MethodDescriptor, rt Route) (Plan, error) {
	bs := httprule.Bindings(md)
	if len(bs) == 0 {
		return Plan{}, fmt.Errorf("%s: no google.api.http rule", md.FullName())
	}
	b := bs[0]
	in := md.Input()
	tmpl, err := httprule.CompileTemplate(b.Template, in)
	if err != nil {
		return Plan{}, fmt.Errorf("%s: %w", md.FullName(), err)
	}
	p := Plan{RPC: md, Upstream: rt.Upstream, HTTPMethod: b.Method, Template: tmpl}
	switch b.Body {
	case "":
	case "*":
		p.BodyAll = true
	default:
		fd := in.Fields().ByName(protoreflect.Name(b.Body))
		if fd == nil || fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return Plan{}, fmt.Errorf("%s: body %q must be a singular message field", md.FullName(), b.Body)
		}
		p.BodyField = fd
	}
	if !p.BodyAll {
		for i := 0; i < in.Fields().Len(); i++ {
			fd := in.Fields().Get(i)
			if tmpl.Vars[fd.Name()] || fd == p.BodyField || fd.IsMap() || fd.Kind() == protoreflect.MessageKind {
				continue
			}
			p.Query = append(p.Query, fd)
		}
	}
	if b.ResponseBody != "" {
		fd := md.Output().Fields().ByName(protoreflect.Name(b.ResponseBody))
		if fd == nil || fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			return Plan{}, fmt.Errorf("%s: response_body %q must be a singular message field", md.FullName(), b.ResponseBody)
		}
		p.ResponseField = fd
	}
	return p, nil
}
