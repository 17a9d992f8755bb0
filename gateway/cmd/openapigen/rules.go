package main

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

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
	intMin, intMax     *int64 // min and max exactly, for integer fields
	minLen, maxLen     *uint64
	pattern            string
	minItems, maxItems *uint64
	// set names the fields of a message-typed field that its CEL rules
	// require to be set, that is not 0 ("this.product_id != 0").
	set []string
	// unstated are the CEL expressions of the field that the document cannot
	// state; Build refuses them, so that no rule is enforced unsaid.
	unstated []string
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
		case "cel":
			r.readCEL(v.List())
		}
		return true
	})
}

// setField is the one form of CEL rule the document states: a field of a
// message-typed field must be set (a number other than 0).
var setField = regexp.MustCompile(`^this\.([a-z][a-z0-9_]*) != 0$`)

// readCEL reads a field's list of buf.validate.Rule (id, message,
// expression).
func (r *rules) readCEL(l protoreflect.List) {
	for i := 0; i < l.Len(); i++ {
		m := l.Get(i).Message()
		expr := strings.TrimSpace(m.Get(m.Descriptor().Fields().ByName("expression")).String())
		if sub := setField.FindStringSubmatch(expr); sub != nil {
			r.set = append(r.set, sub[1])
		} else {
			r.unstated = append(r.unstated, expr)
		}
	}
}

func (r *rules) readNumber(m protoreflect.Message) {
	m.Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		n, ok := number(f, v)
		if !ok {
			return true
		}
		var exact *int64
		switch f.Kind() {
		case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
			protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
			i := v.Int()
			exact = &i
		}
		switch f.Name() {
		case "gt":
			r.min, r.exclMin, r.intMin = &n, true, exact
		case "gte":
			r.min, r.intMin = &n, exact
		case "lt":
			r.max, r.exclMax, r.intMax = &n, true, exact
		case "lte":
			r.max, r.intMax = &n, exact
		case "const":
			r.min, r.max, r.intMin, r.intMax = &n, &n, exact, exact
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

// apply writes the bounds into s. Integer bounds are also kept exactly, in
// extensions that the tree stage (see exactBounds) writes as minimum and
// maximum; it drops them from strings, where an int64 field's pattern
// states them.
func (r rules) apply(s *openapi3.Schema) {
	if r.min != nil {
		s.Min = r.min
		if r.exclMin {
			s.ExclusiveMin = exclusive()
		}
		if r.intMin != nil {
			lo := *r.intMin
			if r.exclMin {
				lo++
			}
			setExtension(s, extExactMinimum, exactInt(lo))
		}
	}
	if r.max != nil {
		s.Max = r.max
		if r.exclMax {
			s.ExclusiveMax = exclusive()
		}
		if r.intMax != nil {
			hi := *r.intMax
			if r.exclMax {
				hi--
			}
			setExtension(s, extExactMaximum, exactInt(hi))
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
	if p := int64StringPattern(s, r, inJSON); p != "" && s.Pattern == "" {
		s.Pattern = p
	}
	if r.minItems != nil {
		s.MinItems = *r.minItems
	}
	if r.maxItems != nil {
		s.MaxItems = r.maxItems
	}
}

// setExtension sets the extension name of s to v.
func setExtension(s *openapi3.Schema, name string, v any) {
	if s.Extensions == nil {
		s.Extensions = map[string]any{}
	}
	s.Extensions[name] = v
}

// exclusive is the OpenAPI 3.0 form of an exclusive bound: a flag beside
// minimum or maximum.
func exclusive() openapi3.ExclusiveBound {
	t := true
	return openapi3.ExclusiveBound{Bool: &t}
}

// numberForm is where an integer is written as a string, which decides the
// forms the gateway reads besides plain decimal digits.
type numberForm int

const (
	// inJSON is a JSON string in a body, read by protojson as a JSON number:
	// no leading zeros, no sign but "-".
	inJSON numberForm = iota
	// inURL is a path or query parameter, read by strconv.ParseInt: leading
	// zeros and a "+" allowed.
	inURL
)

// int64StringPattern returns the pattern that states the bounds of an int64
// written as a string (the proto3 JSON mapping in a body, or a path or query
// parameter), where minimum and maximum do not apply: the decimal numbers
// from the lower bound (0, or 1 for "> 0") up to the upper bound (the
// rule's, else the int64 maximum), in the forms the gateway reads there
// ("-0" is 0 in both). A longer number is refused by the gateway, so the
// pattern must exclude it. It returns "" for any other field, or a lower
// bound other than 0 or 1.
func int64StringPattern(s *openapi3.Schema, r rules, form numberForm) string {
	if !s.Type.Is(openapi3.TypeString) || s.Format != "int64" || r.intMin == nil {
		return ""
	}
	lo := *r.intMin
	if r.exclMin {
		lo++
	}
	hi := int64(math.MaxInt64)
	if r.intMax != nil {
		hi = *r.intMax
		if r.exclMax {
			hi--
		}
	}
	return decimalPattern(lo, hi, form)
}

// decimalPattern returns the pattern of the integers from lo to hi written
// as a string in form (see int64StringPattern), or "" unless lo is 0 or 1
// and hi is not below it.
func decimalPattern(lo, hi int64, form numberForm) string {
	if (lo != 0 && lo != 1) || hi < lo {
		return ""
	}
	numbers := strings.Join(decimalsUpTo(uint64(hi)), "|")
	switch {
	case form == inJSON && lo == 0:
		return "^(-?0|" + numbers + ")$"
	case form == inJSON:
		return "^(" + numbers + ")$"
	case lo == 0:
		return `^(\+?0*(0|` + numbers + ")|-0+)$"
	}
	return `^\+?0*(` + numbers + ")$"
}

// decimalsUpTo returns regular expressions that together match the decimal
// numbers from 1 to hi without leading zeros: every number with fewer digits
// than hi, then, for each digit of hi, hi's digits before it followed by a
// smaller digit and any digits, then hi itself.
func decimalsUpTo(hi uint64) []string {
	if hi == 0 {
		return nil
	}
	digits := strconv.FormatUint(hi, 10)
	n := len(digits)
	var alts []string
	if n > 1 {
		alts = append(alts, "[1-9]"+anyDigits(0, n-2))
	}
	for i := 0; i < n; i++ {
		low := byte('0')
		if i == 0 {
			low = '1'
		}
		if digits[i] > low {
			alts = append(alts, digits[:i]+digitClass(low, digits[i]-1)+anyDigits(n-i-1, n-i-1))
		}
	}
	return append(alts, digits)
}

// digitClass matches one digit from a to b.
func digitClass(a, b byte) string {
	if a == b {
		return string(a)
	}
	return "[" + string(a) + "-" + string(b) + "]"
}

// anyDigits matches from min to max digits.
func anyDigits(min, max int) string {
	switch {
	case max == 0:
		return ""
	case min == max && max == 1:
		return "[0-9]"
	case min == max:
		return "[0-9]{" + strconv.Itoa(max) + "}"
	}
	return "[0-9]{" + strconv.Itoa(min) + "," + strconv.Itoa(max) + "}"
}
