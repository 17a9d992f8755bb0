// Package protofields reads and copies protobuf message fields by name, so
// that the gateway can move data between messages of different types that
// share field names (a GetCart request into a GetFallbackCart request, an RPC
// response into an event payload) without per-type code.
package protofields

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// CopyByName sets every field of dst that has a field of the same name, kind
// and cardinality (and, for messages and enums, the same full type name) in
// src. Fields of dst without such a twin are left alone. It returns an error
// when a same-named field differs in type, since that is a contract bug.
func CopyByName(dst, src protoreflect.Message) error {
	dfs := dst.Descriptor().Fields()
	sfs := src.Descriptor().Fields()
	for i := 0; i < dfs.Len(); i++ {
		df := dfs.Get(i)
		sf := sfs.ByName(df.Name())
		if sf == nil {
			continue
		}
		if !sameType(df, sf) {
			return fmt.Errorf("field %s: %s and %s differ in type", df.Name(), dst.Descriptor().FullName(), src.Descriptor().FullName())
		}
		if src.Has(sf) {
			dst.Set(df, src.Get(sf))
		}
	}
	return nil
}

func sameType(a, b protoreflect.FieldDescriptor) bool {
	if a.Kind() != b.Kind() || a.Cardinality() != b.Cardinality() || a.IsMap() != b.IsMap() {
		return false
	}
	switch a.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return a.Message().FullName() == b.Message().FullName()
	case protoreflect.EnumKind:
		return a.Enum().FullName() == b.Enum().FullName()
	}
	return true
}

// Path is a compiled dotted field path such as "item.user_id". A path that
// goes through a repeated message field takes that field's first element.
type Path []protoreflect.FieldDescriptor

// Compile resolves a dotted path against a message descriptor. The last
// element must be a singular scalar or enum field.
func Compile(md protoreflect.MessageDescriptor, dotted string) (Path, error) {
	if dotted == "" {
		return nil, fmt.Errorf("empty field path")
	}
	var p Path
	cur := md
	parts := strings.Split(dotted, ".")
	for i, name := range parts {
		if cur == nil {
			return nil, fmt.Errorf("field path %q: %s is not a message", dotted, parts[i-1])
		}
		fd := cur.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("field path %q: %s has no field %q", dotted, cur.FullName(), name)
		}
		last := i == len(parts)-1
		if fd.IsMap() {
			return nil, fmt.Errorf("field path %q: map field %q is not supported", dotted, name)
		}
		if last {
			if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind || fd.IsList() {
				return nil, fmt.Errorf("field path %q: %q must be a singular scalar", dotted, name)
			}
		} else if fd.Kind() != protoreflect.MessageKind {
			return nil, fmt.Errorf("field path %q: %q is not a message", dotted, name)
		}
		p = append(p, fd)
		cur = fd.Message()
	}
	return p, nil
}

// Value returns the scalar at the path in m and whether it is set. A repeated
// message on the way that is empty, or an unset message, yields false.
func (p Path) Value(m protoreflect.Message) (protoreflect.Value, bool) {
	for i, fd := range p {
		if i == len(p)-1 {
			return m.Get(fd), true
		}
		if fd.IsList() {
			l := m.Get(fd).List()
			if l.Len() == 0 {
				return protoreflect.Value{}, false
			}
			m = l.Get(0).Message()
			continue
		}
		if !m.Has(fd) {
			return protoreflect.Value{}, false
		}
		m = m.Get(fd).Message()
	}
	return protoreflect.Value{}, false
}

// String returns the scalar at the path formatted as text (enums by name,
// integers in decimal), and false when the path is unset.
func (p Path) String(m protoreflect.Message) (string, bool) {
	v, ok := p.Value(m)
	if !ok {
		return "", false
	}
	return FormatScalar(p[len(p)-1], v), true
}

// FormatScalar formats a singular scalar or enum value as it appears in a URL
// path or query: integers in decimal, enums by value name, bytes as text.
func FormatScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return fmt.Sprint(int32(v.Enum()))
	case protoreflect.BytesKind:
		return string(v.Bytes())
	}
	return v.String()
}

// EachField calls fn for every field of md and of the message types below
// it, each message type once (a recursive type ends the descent).
func EachField(md protoreflect.MessageDescriptor, fn func(protoreflect.FieldDescriptor)) {
	eachField(md, fn, map[protoreflect.FullName]bool{})
}

func eachField(md protoreflect.MessageDescriptor, fn func(protoreflect.FieldDescriptor), seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		fn(fd)
		if fd.Message() != nil {
			eachField(fd.Message(), fn, seen)
		}
	}
}
