package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/contract"
	"github.com/shopgateway/shop/gateway/internal/jsonbody"
	"github.com/shopgateway/shop/gateway/internal/protofields"
)

// strictJSON is the REST marshaler: runtime.JSONPb, with a request decoder
// that is stricter than protojson on its own. A body must be one JSON value
// and nothing after it; null is refused for every field (no field of the
// API is nullable, and protojson would read null as "unset", zeroing what a
// replacement leaves out); a field marked REQUIRED must appear; and a body
// that breaks any of this, or that protojson refuses, is answered with
// every wrong field named by its path in proto field names, in a
// google.rpc.BadRequest (see jsonbody), without parser internals.
type strictJSON struct {
	*runtime.JSONPb
}

// NewDecoder returns the strict decoder of one request body.
func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error { return m.decode(r, v) })
}

var jsonNull = []byte("null")

func (m strictJSON) decode(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return rejectBody(r, apierr.FieldViolation{Description: fmt.Sprintf("the body is larger than %d bytes", mbe.Limit)})
		}
		return rejectBody(r, apierr.FieldViolation{Description: "the body could not be read"})
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return io.EOF // no body: the generated handlers read it as an empty message
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return rejectBody(r, apierr.FieldViolation{Description: "malformed JSON: " + jsonSyntaxMessage(err)})
	}
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		return rejectBody(r, apierr.FieldViolation{Description: fmt.Sprintf("%d bytes of unexpected data after the JSON value", len(rest))})
	}
	md := descriptorOf(v)
	if md != nil && (bytes.Contains(raw, jsonNull) || contract.HasRequired(md)) {
		if vs := jsonbody.Check(raw, md, jsonbody.Shape); len(vs) > 0 {
			// Report every problem of the body at once, not only these.
			return rejectBody(r, jsonbody.Check(raw, md, jsonbody.Values)...)
		}
	}
	if err := m.JSONPb.Unmarshal(raw, v); err != nil {
		return rejectBody(r, decodeViolations(raw, md, err)...)
	}
	return nil
}

// decodeViolations names the fields of a body that protojson refused: the
// checks of jsonbody, which find what protojson finds but name each field by
// its path in proto field names. Should they find nothing, protojson's own
// message is the one violation, its JSON names put back to proto names.
func decodeViolations(raw []byte, md protoreflect.MessageDescriptor, err error) []apierr.FieldViolation {
	if md != nil {
		if vs := jsonbody.Check(raw, md, jsonbody.Values); len(vs) > 0 {
			return vs
		}
	}
	return []apierr.FieldViolation{{Description: protoNames(protojsonMessage(err), md)}}
}

// jsonName matches a JSON field name in a protojson message: a word with an
// upper-case letter after its first character.
var jsonName = regexp.MustCompile(`\b[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+\b`)

// protoNames replaces, in msg, the JSON names of the fields of md and of the
// messages below it by their proto names ("productId" by "product_id").
func protoNames(msg string, md protoreflect.MessageDescriptor) string {
	if md == nil {
		return msg
	}
	names := map[string]string{}
	protofields.EachField(md, func(fd protoreflect.FieldDescriptor) {
		names[fd.JSONName()] = string(fd.Name())
	})
	return jsonName.ReplaceAllStringFunc(msg, func(w string) string {
		if n, ok := names[w]; ok {
			return n
		}
		return w
	})
}

// descriptorOf returns the message descriptor of a decode target: a proto
// message, or a pointer to a message field (body: "item" decodes into
// &req.Item).
func descriptorOf(v any) protoreflect.MessageDescriptor {
	if m, ok := v.(proto.Message); ok {
		return m.ProtoReflect().Descriptor()
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil
	}
	if m, ok := reflect.New(rv.Elem().Type().Elem()).Interface().(proto.Message); ok && rv.Elem().Kind() == reflect.Pointer {
		return m.ProtoReflect().Descriptor()
	}
	return nil
}

// jsonSyntaxMessage describes a JSON syntax error by its offset, without
// Go type names.
func jsonSyntaxMessage(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the body ends inside a JSON value"
	}
	return "not a JSON value"
}

// protojsonPrefix is what protojson puts before its messages. Its spaces
// are sometimes U+00A0, on purpose (protobuf's detrand), so that nobody
// relies on the exact text.
var protojsonPrefix = regexp.MustCompile(`^proto:[\s\x{00a0}]*(syntax[\s\x{00a0}]error[\s\x{00a0}]*)?(\(line[\s\x{00a0}]\d+:\d+\):[\s\x{00a0}]*)?`)

// protojsonMessage is a protojson error without its "proto: (line 1:5):"
// prefix.
func protojsonMessage(err error) string {
	return protojsonPrefix.ReplaceAllString(err.Error(), "")
}

// rejectBody records the violations on the request's body (when it is a
// *requestBody, as httpMiddleware makes it) and returns them as an error.
func rejectBody(r io.Reader, vs ...apierr.FieldViolation) error {
	err := apierr.InvalidArgument(vs...)
	if b, ok := r.(*requestBody); ok {
		b.err = err
	}
	return err
}

// Messages of grpc-gateway's own parameter parsing, which embed strconv's.
var (
	pathParamError  = regexp.MustCompile(`^type mismatch, parameter: ([\w.]+), error: `)
	queryParamError = regexp.MustCompile(`^parsing (?:field|list) "([\w.]+)": `)
	missingParam    = regexp.MustCompile(`^missing parameter ([\w.]+)$`)
)

// restError turns an error of the REST mux into the status answered: a
// rejected body's own status, grpc-gateway's parameter errors rewritten
// as field violations, and every message bounded.
//
// bodyField is the request field the body was decoded into ("item"): the
// decoder saw only that message, so its field paths get it as a prefix, to
// be relative to the request message as everywhere else.
func restError(r *http.Request, err error, bodyField string) error {
	if b, ok := r.Body.(*requestBody); ok && b.err != nil {
		if bodyField != "" {
			return apierr.PrefixFields(b.err, bodyField+".")
		}
		return b.err
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return apierr.Bound(err)
	}
	msg := st.Message()
	for _, re := range []*regexp.Regexp{pathParamError, queryParamError} {
		if m := re.FindStringSubmatch(msg); m != nil {
			return apierr.InvalidArgument(apierr.FieldViolation{Field: m[1], Description: "is not a valid " + fieldKind(msg)})
		}
	}
	if m := missingParam.FindStringSubmatch(msg); m != nil {
		return apierr.InvalidArgument(apierr.FieldViolation{Field: m[1], Description: "is required"})
	}
	if strings.HasPrefix(msg, "proto:") {
		return apierr.InvalidArgument(apierr.FieldViolation{Description: protojsonMessage(errors.New(msg))})
	}
	return apierr.Bound(err)
}

// fieldKind guesses the expected type from the strconv error inside msg.
func fieldKind(msg string) string {
	switch {
	case strings.Contains(msg, "ParseInt"), strings.Contains(msg, "ParseUint"):
		if strings.Contains(msg, "out of range") {
			return "integer in range"
		}
		return "integer"
	case strings.Contains(msg, "ParseFloat"):
		return "number"
	case strings.Contains(msg, "ParseBool"):
		return "boolean"
	}
	return "value"
}

// contentTypeOK reports whether a request body's Content-Type is JSON:
// application/json (any parameters, charset only UTF-8) or absent.
func contentTypeOK(ct string) bool {
	if ct == "" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}
