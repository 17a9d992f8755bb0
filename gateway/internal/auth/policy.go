package auth

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"

	"github.com/shopgateway/shop/gateway/internal/httprule"
)

// rule is the compiled AuthPolicy of one RPC.
type rule struct {
	access annotationsv1.Access
	owner  protoreflect.FieldDescriptor // ACCESS_OWNER with owner_field, else nil
	scopes []string
}

// compileRules reads the (shop.annotations.v1.auth) option of every method
// of services. A method without one, or with a policy that cannot be
// enforced, is an error: the gateway does not serve an RPC whose callers it
// cannot decide. Every problem is reported at once.
func compileRules(services []protoreflect.ServiceDescriptor) (map[string]*rule, error) {
	rules := map[string]*rule{}
	var errs []error
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			r, err := compileRule(md)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", md.FullName(), err))
				continue
			}
			rules[httprule.FullMethod(md)] = r
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth policy: %w", err)
	}
	return rules, nil
}

// PolicyOf returns the AuthPolicy option of md, or nil when it has none.
func PolicyOf(md protoreflect.MethodDescriptor) *annotationsv1.AuthPolicy {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, annotationsv1.E_Auth) {
		return nil
	}
	p, _ := proto.GetExtension(opts, annotationsv1.E_Auth).(*annotationsv1.AuthPolicy)
	return p
}

func compileRule(md protoreflect.MethodDescriptor) (*rule, error) {
	p := PolicyOf(md)
	if p == nil {
		return nil, errors.New("no (shop.annotations.v1.auth) option")
	}
	r := &rule{access: p.GetAccess(), scopes: p.GetScopes()}
	switch r.access {
	case annotationsv1.Access_ACCESS_PUBLIC:
		if p.GetOwnerField() != "" || len(r.scopes) > 0 {
			return nil, errors.New("auth: a public RPC takes no owner_field or scopes")
		}
	case annotationsv1.Access_ACCESS_OWNER:
		if name := p.GetOwnerField(); name != "" {
			fd := md.Input().Fields().ByName(protoreflect.Name(name))
			if fd == nil || fd.Kind() != protoreflect.Int64Kind || fd.IsList() || fd.IsMap() {
				return nil, fmt.Errorf("auth: owner_field %q is not a singular int64 field of %s", name, md.Input().FullName())
			}
			r.owner = fd
		}
	case annotationsv1.Access_ACCESS_SCOPED:
		if len(r.scopes) == 0 {
			return nil, errors.New("auth: a scoped RPC needs at least one scope")
		}
	default:
		return nil, fmt.Errorf("auth: access %v is not a policy", r.access)
	}
	for _, s := range r.scopes {
		if !validScope(s) {
			return nil, fmt.Errorf("auth: scope %q is not a valid scope-token", s)
		}
	}
	return r, nil
}

// PublicMethods returns the full method names ("/shop.stock.v1.StockService/GetStock")
// of the RPCs of services whose policy is ACCESS_PUBLIC: anyone may call
// them, and the answer does not depend on who asked.
func PublicMethods(services []protoreflect.ServiceDescriptor) map[string]bool {
	out := map[string]bool{}
	for _, sd := range services {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			if p := PolicyOf(md); p != nil && p.GetAccess() == annotationsv1.Access_ACCESS_PUBLIC {
				out["/"+string(sd.FullName())+"/"+string(md.Name())] = true
			}
		}
	}
	return out
}
