package main

import (
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// rules are the constraints on one field that the document states: from
// google.api.field_behavior (REQUIRED) and from protovalidate's
// (buf.validate.field) option when the proto declares one.
type rules struct {
	required           bool
	min, max           *float64
	exclMin, exclMax   bool
	minLen, maxLen     *uint64
	pattern            string
	minItems, maxItems *uint64
}

// protovalidateField is the full name of protovalidate's field option.
const protovalidateField = "buf.validate.field"

// fieldRules reads the constraints of fd. The protovalidate option is read
// by reflection, so that this works whether or not the proto uses it.
func fieldRules(fd protoreflect.FieldDescriptor) rules {
	var r rules
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || opts == nil {
		return r
	}
	if fb, ok := proto.GetExtension(opts, annotations.E_FieldBehavior).([]annotations.FieldBehavior); ok {
		r.required = slices.Contains(fb, annotations.FieldBehavior_REQUIRED)
	}
	opts.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if f.IsExtension() && f.FullName() == protovalidateField && f.Kind() == protoreflect.MessageKind {
			r.readProtovalidate(v.Message())
		}
		return true
	})
	return r
}

// readProtovalidate reads a buf.validate.FieldRules message.
func (r *rules) readProtovalidate(m protoreflect.Message) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch f.Name() {
		case "required":
			r.required = r.required || v.Bool()
		case "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "float", "double":
			r.readNumber(v.Message())
		case "string":
			r.readString(v.Message())
		case "repeated":
			r.readRepeated(v.Message())
		}
		return true
	})
}

func (r *rules) readNumber(m protoreflect.Message) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		n, ok := number(f, v)
		if !ok {
			return true
		}
		switch f.Name() {
		case "gt":
			r.min, r.exclMin = &n, true
		case "gte":
			r.min = &n
		case "lt":
			r.max, r.exclMax = &n, true
		case "lte":
			r.max = &n
		case "const":
			r.min, r.max = &n, &n
		}
		return true
	})
}

func number(f protoreflect.FieldDescriptor, v protoreflect.Value) (float64, bool) {
	if f.IsList() {
		return 0, false
	}
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return float64(v.Int()), true
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return float64(v.Uint()), true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return v.Float(), true
	}
	return 0, false
}

func (r *rules) readString(m protoreflect.Message) {
	var exact *uint64
	readCounts(m, map[protoreflect.Name]**uint64{"min_len": &r.minLen, "max_len": &r.maxLen, "len": &exact})
	if exact != nil {
		r.minLen, r.maxLen = exact, exact
	}
	if fd := m.Descriptor().Fields().ByName("pattern"); fd != nil && m.Has(fd) {
		r.pattern = m.Get(fd).String()
	}
}

func (r *rules) readRepeated(m protoreflect.Message) {
	readCounts(m, map[protoreflect.Name]**uint64{"min_items": &r.minItems, "max_items": &r.maxItems})
}

// readCounts sets *dst[name] to the value of each unsigned field of m that
// is set and named in dst.
func readCounts(m protoreflect.Message, dst map[protoreflect.Name]**uint64) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if p, ok := dst[f.Name()]; ok && f.Kind() == protoreflect.Uint64Kind {
			n := v.Uint()
			*p = &n
		}
		return true
	})
}

// apply writes the bounds into s. An int64 field is a string in the proto3
// JSON mapping, and the gateway accepts it as a number too: its bounds are
// stated all the same, since they are what the gateway enforces.
func (r rules) apply(s *openapi3.Schema) {
	if r.min != nil {
		s.Min = r.min
		if r.exclMin {
			s.ExclusiveMin = exclusive()
		}
	}
	if r.max != nil {
		s.Max = r.max
		if r.exclMax {
			s.ExclusiveMax = exclusive()
		}
	}
	if r.minLen != nil {
		s.MinLength = *r.minLen
	}
	if r.maxLen != nil {
		s.MaxLength = r.maxLen
	}
	if r.pattern != "" {
		s.Pattern = r.pattern
	}
	if p := int64StringPattern(s, r); p != "" && s.Pattern == "" {
		s.Pattern = p
	}
	if r.minItems != nil {
		s.MinItems = *r.minItems
	}
	if r.maxItems != nil {
		s.MaxItems = r.maxItems
	}
}

// exclusive is the OpenAPI 3.0 form of an exclusive bound: a flag beside
// minimum or maximum.
func exclusive() openapi3.ExclusiveBound {
	t := true
	return openapi3.ExclusiveBound{Bool: &t}
}

// int64StringPattern returns the pattern that states a lower bound of 0 on
// an int64 written as a JSON string (the proto3 JSON mapping), where
// minimum does not apply: digits only for ">= 0", and at least one digit
// other than 0 for "> 0". It returns "" for any other field or bound.
func int64StringPattern(s *openapi3.Schema, r rules) string {
	if !s.Type.Is(openapi3.TypeString) || (s.Format != "int64" && s.Format != "uint64") || r.min == nil || *r.min != 0 {
		return ""
	}
	if r.exclMin {
		return "^[0-9]*[1-9][0-9]*$"
	}
	return "^[0-9]+$"
}
