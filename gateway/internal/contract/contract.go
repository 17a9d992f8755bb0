// Package contract enforces at the gateway what the proto declares about a
// request beyond its types: the fields marked (google.api.field_behavior) =
// REQUIRED, and the protovalidate rules ((buf.validate.field): numeric
// bounds, string lengths, item counts). The same checks run for REST and
// gRPC (one interceptor in the chain both go through); the REST decoder adds
// the JSON-only part (a required number must appear as a key, since proto3
// cannot tell an absent number from 0 once decoded).
package contract

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// info is what the checks need of one message type, computed once.
type info struct {
	required []protoreflect.FieldDescriptor
	// nested are the message fields whose type (transitively) has required
	// fields, to be checked where present.
	nested []protoreflect.FieldDescriptor
}

var cache sync.Map // protoreflect.FullName -> *info

func infoOf(md protoreflect.MessageDescriptor) *info {
	if v, ok := cache.Load(md.FullName()); ok {
		return v.(*info)
	}
	in := compute(md, map[protoreflect.FullName]bool{})
	v, _ := cache.LoadOrStore(md.FullName(), in)
	return v.(*info)
}

func compute(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) *info {
	seen[md.FullName()] = true
	in := &info{}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if IsRequired(fd) {
			in.required = append(in.required, fd)
		}
		if fd.Message() != nil && !fd.IsMap() && !seen[fd.Message().FullName()] {
			if HasRequired(fd.Message()) {
				in.nested = append(in.nested, fd)
			}
		}
	}
	return in
}

// IsRequired reports whether fd is marked (google.api.field_behavior) =
// REQUIRED.
func IsRequired(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil || !proto.HasExtension(opts, annotations.E_FieldBehavior) {
		return false
	}
	for _, b := range proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior) {
		if b == annotations.FieldBehavior_REQUIRED {
			return true
		}
	}
	return false
}

// Required returns the required fields of md, in declaration order.
func Required(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	return infoOf(md).required
}

// HasRequired reports whether md or a message type nested in it has a
// required field.
func HasRequired(md protoreflect.MessageDescriptor) bool {
	in := infoOf(md)
	return len(in.required) > 0 || len(in.nested) > 0
}

// Check returns a violation for every required field of m (and of the
// messages nested in it) that is unset, as far as the message can tell:
// a message field must be present, a string, bytes or repeated field not
// empty. A required number with implicit presence cannot be told apart
// from 0 and is not checked here.
func Check(m protoreflect.Message) []apierr.FieldViolation {
	var out []apierr.FieldViolation
	check(m, "", &out)
	return out
}

func check(m protoreflect.Message, prefix string, out *[]apierr.FieldViolation) {
	in := infoOf(m.Descriptor())
	for _, fd := range in.required {
		missing := false
		switch {
		case fd.IsList():
			missing = m.Get(fd).List().Len() == 0
		case fd.IsMap():
			missing = m.Get(fd).Map().Len() == 0
		case fd.HasPresence():
			missing = !m.Has(fd)
		case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
			missing = !m.Has(fd)
		}
		if missing {
			*out = append(*out, apierr.FieldViolation{Field: prefix + string(fd.Name()), Description: "is required"})
		}
	}
	for _, fd := range in.nested {
		if fd.IsList() {
			l := m.Get(fd).List()
			for i := range l.Len() {
				check(l.Get(i).Message(), prefix+string(fd.Name())+"["+strconv.Itoa(i)+"].", out)
			}
			continue
		}
		if m.Has(fd) {
			check(m.Get(fd).Message(), prefix+string(fd.Name())+".", out)
		}
	}
}

// Text returns a violation for every string field of m, in nested
// messages, lists and map values too, that holds a control character
// (Unicode category Cc: C0 such as NUL, newline and escape, DEL, C1). No
// text of the API is meant to hold one, and one store cannot (PostgreSQL's
// text refuses NUL): the gateway refuses them for every request field,
// whatever the field's own rules say.
func Text(m protoreflect.Message) []apierr.FieldViolation {
	var out []apierr.FieldViolation
	text(m, "", &out)
	return out
}

const controlText = "must not contain control characters"

func text(m protoreflect.Message, prefix string, out *[]apierr.FieldViolation) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() { // declaration order, for a stable answer
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v, name := m.Get(fd), prefix+string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				at := name + "[" + strconv.Quote(k.String()) + "]"
				if fd.MapKey().Kind() == protoreflect.StringKind && hasControl(k.String()) {
					*out = append(*out, apierr.FieldViolation{Field: at, Description: "key " + controlText})
				}
				textValue(fd.MapValue(), mv, at, out)
				return true
			})
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				textValue(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]", out)
			}
		default:
			textValue(fd, v, name, out)
		}
	}
}

// textValue checks one value of fd's kind found at path.
func textValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, out *[]apierr.FieldViolation) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if hasControl(v.String()) {
			*out = append(*out, apierr.FieldViolation{Field: path, Description: controlText})
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		text(v.Message(), path+".", out)
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// validator is the one protovalidate validator of the process: it compiles
// a message type's rules on first use and keeps them.
var validator = sync.OnceValues(func() (protovalidate.Validator, error) {
	return protovalidate.New()
})

// Validate returns a violation for every required field of m that is unset
// (see Check), every string field with a control character (see Text) and
// every protovalidate rule m breaks, at most one per field (in that
// order). An error is returned only when the rules
// themselves cannot be evaluated, which is a defect of the proto, not of
// the request.
func Validate(m proto.Message) ([]apierr.FieldViolation, error) {
	vs := Check(m.ProtoReflect())
	for _, fv := range Text(m.ProtoReflect()) {
		if !slices.ContainsFunc(vs, func(o apierr.FieldViolation) bool { return o.Field == fv.Field }) {
			vs = append(vs, fv)
		}
	}
	v, err := validator()
	if err != nil {
		return nil, fmt.Errorf("contract: protovalidate: %w", err)
	}
	err = v.Validate(m)
	if err == nil {
		return vs, nil
	}
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return nil, fmt.Errorf("contract: protovalidate %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	seen := make(map[string]bool, len(vs))
	for _, fv := range vs {
		seen[fv.Field] = true
	}
	for _, pv := range verr.Violations {
		field := protovalidate.FieldPathString(pv.Proto.GetField())
		if seen[field] {
			continue
		}
		seen[field] = true
		vs = append(vs, apierr.FieldViolation{Field: field, Description: pv.Proto.GetMessage()})
	}
	return vs, nil
}

// Interceptor rejects a request that breaks the contract (see Validate)
// with INVALID_ARGUMENT and a google.rpc.BadRequest detail, before anything
// else sees it: no upstream call is made.
func Interceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok {
			vs, err := Validate(m)
			if err != nil {
				return nil, apierr.New(codes.Internal, "request rules could not be evaluated").WithCause(err)
			}
			if len(vs) > 0 {
				return nil, apierr.InvalidArgument(vs...)
			}
		}
		return handler(ctx, req)
	}
}
