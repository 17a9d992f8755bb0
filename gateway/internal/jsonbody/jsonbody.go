// Package jsonbody checks a JSON request body against the message it is
// decoded into, field by field, and names every problem by the field's path
// in proto field names ("quantity", "items[0].quantity", "item.price_cents"),
// whichever of the two names (proto or JSON) the body used. protojson, which
// does the decoding, stops at the first problem and names the field by its
// JSON name ("productId"); this package is what turns a body it refused into
// a google.rpc.BadRequest that lists each wrong field.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/contract"
)

// Depth is how far Check checks: Shape for what protojson accepts but the
// API does not (null for a field, a required field left out), Values for
// every problem, protojson's too.
type Depth int

const (
	// Shape checks null values and required fields only. It is the check a
	// body that protojson accepted still needs: protojson reads null as
	// "unset" and cannot tell an absent number from 0.
	Shape Depth = iota
	// Values checks everything Shape does, and also every key (it must name
	// a field, once) and every value (its JSON type and range must fit the
	// field's type), as protojson does.
	Values
)

// maxKeyBytes bounds the echo of a key that names no field.
const maxKeyBytes = 64

// Check returns the violations of raw, one JSON value, as a body of message
// md, in the order of the body's keys, then the required fields left out in
// declaration order. A body that is not a JSON object is one violation of
// the request as a whole.
func Check(raw []byte, md protoreflect.MessageDescriptor, depth Depth) []apierr.FieldViolation {
	c := checker{depth: depth}
	if !c.object(raw, md, "") {
		return []apierr.FieldViolation{{Description: "the body must be a JSON object"}}
	}
	return c.out
}

type checker struct {
	depth Depth
	out   []apierr.FieldViolation
}

func (c *checker) add(field, description string) {
	c.out = append(c.out, apierr.FieldViolation{Field: field, Description: description})
}

// object checks raw as message md at prefix ("" or "items[0]."); it returns
// false when raw is not a JSON object.
func (c *checker) object(raw []byte, md protoreflect.MessageDescriptor, prefix string) bool {
	members, ok := objectMembers(raw)
	if !ok {
		return false
	}
	fields := md.Fields()
	seen := make(map[protoreflect.FieldDescriptor]bool, len(members))
	for _, m := range members {
		fd := fields.ByName(protoreflect.Name(m.key))
		if fd == nil {
			fd = fields.ByJSONName(m.key)
		}
		if fd == nil {
			if c.depth == Values {
				c.add(prefix+boundKey(m.key), "is not a field of "+string(md.Name()))
			}
			continue
		}
		path := prefix + string(fd.Name())
		if seen[fd] {
			if c.depth == Values {
				c.add(path, "is given more than once")
			}
			continue
		}
		seen[fd] = true
		c.field(m.val, fd, path)
	}
	for _, fd := range contract.Required(md) {
		if !seen[fd] {
			c.add(prefix+string(fd.Name()), "is required")
		}
	}
	return true
}

// field checks the value of one field.
func (c *checker) field(val []byte, fd protoreflect.FieldDescriptor, path string) {
	if isNull(val) {
		c.add(path, "must not be null")
		return
	}
	switch {
	case fd.IsMap():
		if c.depth == Values && !validValue(fd, val) {
			c.add(path, "must be a JSON object of valid keys and values")
		}
	case fd.IsList():
		elems, ok := arrayElements(val)
		if !ok {
			if c.depth == Values {
				c.add(path, "must be a JSON array")
			}
			return
		}
		for i, e := range elems {
			c.element(e, fd, path+"["+strconv.Itoa(i)+"]")
		}
	default:
		c.element(val, fd, path)
	}
}

// element checks one value of fd: the field's value, or one element of a
// repeated field's array.
func (c *checker) element(val []byte, fd protoreflect.FieldDescriptor, path string) {
	if isNull(val) {
		c.add(path, "must not be null")
		return
	}
	if md := fd.Message(); md != nil && !isWellKnown(md) {
		if !c.object(val, md, path+".") && c.depth == Values {
			c.add(path, "must be a JSON object")
		}
		return
	}
	if c.depth == Values && !validValue(fd, val) {
		c.add(path, describe(fd))
	}
}

// validValue reports whether protojson reads val as a value of fd (an
// element, for a repeated field): it decodes a message of fd's containing
// type that has only that field.
func validValue(fd protoreflect.FieldDescriptor, val []byte) bool {
	if fd.IsList() {
		val = append(append([]byte{'['}, val...), ']')
	}
	var b bytes.Buffer
	b.WriteByte('{')
	b.WriteString(strconv.Quote(string(fd.Name())))
	b.WriteByte(':')
	b.Write(val)
	b.WriteByte('}')
	return protojson.Unmarshal(b.Bytes(), dynamicpb.NewMessage(fd.ContainingMessage())) == nil
}

// describe says what a value of fd must be.
func describe(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "must be an integer from -2147483648 to 2147483647"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "must be an integer from 0 to 4294967295"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "must be an integer from -9223372036854775808 to 9223372036854775807, as a number or a string"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "must be an integer from 0 to 18446744073709551615, as a number or a string"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.StringKind:
		return "must be a string of valid UTF-8"
	case protoreflect.BytesKind:
		return "must be a base64 string"
	case protoreflect.EnumKind:
		return "must be one of " + enumNames(fd.Enum())
	}
	switch fd.Message().FullName() {
	case "google.protobuf.Timestamp":
		return "must be an RFC 3339 timestamp in UTC, such as 2024-05-01T12:00:00Z"
	case "google.protobuf.Duration":
		return "must be a duration in seconds, such as 1.5s"
	}
	return "is not a valid " + string(fd.Message().FullName())
}

// maxEnumList bounds the list of names in an enum's description.
const maxEnumList = 10

func enumNames(ed protoreflect.EnumDescriptor) string {
	var names []string
	for i := 0; i < ed.Values().Len() && i < maxEnumList; i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	if ed.Values().Len() > maxEnumList {
		names = append(names, "…")
	}
	return strings.Join(names, ", ")
}

// isWellKnown reports whether md has a JSON form of its own in protojson
// (a string for Timestamp, any value for Value, ...), rather than an object
// of its fields.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

func isNull(val []byte) bool {
	return bytes.Equal(bytes.TrimSpace(val), []byte("null"))
}

// boundKey returns key, cut to maxKeyBytes at a character boundary.
func boundKey(key string) string {
	if len(key) <= maxKeyBytes {
		return key
	}
	n := maxKeyBytes
	for n > 0 && (key[n]&0xC0) == 0x80 {
		n--
	}
	return key[:n] + "…"
}

type member struct {
	key string
	val json.RawMessage
}

// objectMembers returns the members of the JSON object raw in order,
// repeated keys included; false when raw is not an object.
func objectMembers(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, false
		}
		out = append(out, member{key, val})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, false
	}
	return out, true
}

// arrayElements returns the elements of the JSON array raw; false when raw
// is not an array.
func arrayElements(raw []byte) ([]json.RawMessage, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false
	}
	var out []json.RawMessage
	for dec.More() {
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, false
		}
		out = append(out, val)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, false
	}
	return out, true
}
