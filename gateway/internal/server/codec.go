package server

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	protov2 "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// decodeTarget is what the API's method handlers decode a request into:
// the message and, instead of a failed decode, the error. grpc-go turns
// every codec error into INTERNAL before a handler sees it; with the error
// held here the handler answers INVALID_ARGUMENT, as a malformed request
// deserves.
type decodeTarget struct {
	msg protov2.Message
	err error
	// violations name the fields that made the decoding fail, when it
	// did and they could be found (see wireViolations).
	violations []apierr.FieldViolation
}

// strictCodec is the gRPC server's codec: the standard proto codec, except
// that a decodeTarget receives its decoding error rather than failing the
// call.
type strictCodec struct {
	encoding.CodecV2
}

func newStrictCodec() strictCodec {
	return strictCodec{encoding.GetCodecV2(proto.Name)}
}

// Unmarshal decodes data into v; for a *decodeTarget the error is kept in
// it and nil returned.
func (c strictCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if t, ok := v.(*decodeTarget); ok {
		t.err = c.CodecV2.Unmarshal(data, t.msg)
		if t.err != nil {
			t.violations = wireViolations(data.Materialize(), t.msg.ProtoReflect().Descriptor(), "")
		}
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// wireViolations names the fields of b, a message md in the protobuf wire
// format that did not decode, by their paths in proto field names: a value
// cut short or malformed, and a string that is not valid UTF-8 (proto3
// strings must be), at any depth. A field the message does not declare is
// not a violation (protobuf keeps unknown fields), nor is one whose wire
// type differs from its declaration (protobuf reads it as unknown). When
// the problem lies outside every field (a cut tag), the one violation is of
// the request as a whole.
func wireViolations(b []byte, md protoreflect.MessageDescriptor, prefix string) []apierr.FieldViolation {
	var out []apierr.FieldViolation
	index := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return append(out, apierr.FieldViolation{Field: strings.TrimSuffix(prefix, "."), Description: "is not a valid " + string(md.FullName()) + " message"})
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		m := protowire.ConsumeFieldValue(num, typ, b)
		path := ""
		if fd != nil {
			path = prefix + string(fd.Name())
			if fd.IsList() {
				path += "[" + strconv.Itoa(index[num]) + "]"
				index[num]++
			}
		}
		if m < 0 {
			field := path
			if field == "" {
				field = strings.TrimSuffix(prefix, ".")
			}
			return append(out, apierr.FieldViolation{Field: field, Description: "is cut short or malformed"})
		}
		val := b[:m]
		b = b[m:]
		if fd == nil || fd.IsMap() || typ != protowire.BytesType {
			continue
		}
		inner, _ := protowire.ConsumeBytes(val)
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(inner):
			out = append(out, apierr.FieldViolation{Field: path, Description: "must be valid UTF-8"})
		case fd.Message() != nil:
			out = append(out, wireViolations(inner, fd.Message(), path+".")...)
		}
	}
	return out
}
