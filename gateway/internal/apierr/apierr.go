// Package apierr shapes the errors the gateway answers with. Every package
// returns one error type, Error (code, message, field violations, reason,
// retry delay, cause), and only this package turns it into a gRPC status:
// Finish at the exit of every RPC, Status for the REST answers given
// without one. Messages are bounded in size (a gRPC client cannot receive
// a status of several hundred kilobytes, and a REST client should not have
// to), and INVALID_ARGUMENT errors carry their field violations, so that
// every bad-input error names the field and says what is wrong with it.
package apierr

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MaxMessageBytes bounds the message of every error status the gateway
// answers with, in bytes, including the note of what was cut.
const MaxMessageBytes = 320

// BoundMessage returns msg if it fits MaxMessageBytes, else its head cut at
// a character boundary followed by "... (N more bytes)".
func BoundMessage(msg string) string {
	if len(msg) <= MaxMessageBytes {
		return msg
	}
	// The note takes at most 30 bytes for any message below 10 TB.
	keep := MaxMessageBytes - 30
	for keep > 0 && !utf8.RuneStart(msg[keep]) {
		keep--
	}
	return msg[:keep] + "... (" + strconv.Itoa(len(msg)-keep) + " more bytes)"
}

// Bound returns err with its status message bounded by BoundMessage, code
// and details kept. A nil error, or one whose message fits, is returned as
// is; an error that is not a status is made one (UNKNOWN) first.
func Bound(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		if len(e.msg) <= MaxMessageBytes {
			return err
		}
		out := *e
		out.msg = BoundMessage(e.msg)
		return &out
	}
	st := status.Convert(err)
	if len(st.Message()) <= MaxMessageBytes {
		return err
	}
	p := st.Proto()
	p.Message = BoundMessage(p.Message)
	return status.FromProto(p).Err()
}

// FieldViolation is one problem with one field of a request: Field is its
// path in proto field names ("item.price_cents", "items[2].quantity"; ""
// for the request as a whole), Description says what is wrong without
// echoing the value at length.
type FieldViolation struct {
	Field       string
	Description string
}

func (v FieldViolation) String() string {
	if v.Field == "" {
		return v.Description
	}
	return v.Field + ": " + v.Description
}

// InvalidArgument returns an INVALID_ARGUMENT status error listing vs, its
// message bounded. When any violation names a field, the status carries a
// google.rpc.BadRequest detail with one field_violations entry per field
// (two problems with one field are one entry, their descriptions joined),
// in the order the fields first appear; violations of the request as a
// whole are in the message only.
func InvalidArgument(vs ...FieldViolation) error {
	return New(codes.InvalidArgument, invalidMessage(vs)).WithViolations(vs...)
}

// invalidMessage is the message of InvalidArgument(vs...).
func invalidMessage(vs []FieldViolation) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return BoundMessage("invalid request: " + strings.Join(parts, "; "))
}

// WithViolations adds to st the google.rpc.BadRequest detail of vs, as
// InvalidArgument does, keeping st's message; st as it is when no
// violation names a field.
func WithViolations(st *status.Status, vs []FieldViolation) *status.Status {
	if br := badRequest(vs); br != nil {
		if withDetail, err := st.WithDetails(br); err == nil {
			return withDetail
		}
	}
	return st
}

// maxDescriptionBytes bounds each field violation's description.
const maxDescriptionBytes = 200

func badRequest(vs []FieldViolation) *errdetails.BadRequest {
	var br *errdetails.BadRequest
	index := map[string]int{}
	for _, v := range vs {
		if v.Field == "" {
			continue
		}
		if br == nil {
			br = &errdetails.BadRequest{}
		}
		if i, ok := index[v.Field]; ok {
			fv := br.FieldViolations[i]
			fv.Description = boundTo(fv.Description+"; "+v.Description, maxDescriptionBytes)
			continue
		}
		index[v.Field] = len(br.FieldViolations)
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       v.Field,
			Description: boundTo(v.Description, maxDescriptionBytes),
		})
	}
	return br
}

// boundTo cuts s to at most n bytes at a character boundary.
func boundTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Violations returns the field violations of err's google.rpc.BadRequest
// detail, or nil when it has none.
func Violations(err error) []FieldViolation {
	var out []FieldViolation
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out = append(out, FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
			}
		}
	}
	return out
}

// ErrorDomain is the domain of the google.rpc.ErrorInfo details the API
// answers with: reasons are unique within it. The services choose them
// (OUT_OF_STOCK, EMPTY_CART, UNKNOWN_PRODUCT…, listed in the README); the
// gateway passes them on and adds its own.
const ErrorDomain = "shop.api"

// WithReason adds a google.rpc.ErrorInfo with reason in ErrorDomain to st.
// A reason that is not UPPER_SNAKE_CASE of at most 63 characters, as
// ErrorInfo requires, is left out, and so is an empty one.
func WithReason(st *status.Status, reason string) *status.Status {
	if !validReason(reason) {
		return st
	}
	if out, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		return out
	}
	return st
}

func validReason(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'A' || s[0] > 'Z' || s[len(s)-1] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// RetryDelay is the wait that UNAVAILABLE answers suggest in their
// google.rpc.RetryInfo.
const RetryDelay = time.Second

// Status returns the status a REST client is answered with for err: err
// passed through Finish, then converted. The REST error writer uses it for
// the errors it answers without an RPC (no route, a panic, a body that is
// not JSON), so they are shaped as RPC errors are.
func Status(err error) *status.Status {
	return status.Convert(Finish(err))
}

// Finish is the one place every RPC's error passes on its way out, for
// gRPC and REST alike: an UNAVAILABLE status gets a google.rpc.RetryInfo
// (RetryDelay) unless it has one, and every message is bounded. An *Error
// is converted to its gRPC status error here (see Error.GRPCStatus); other
// errors, and nil, are returned as they are.
func Finish(err error) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		if e.code == codes.Unavailable && e.retryDelay <= 0 {
			e = e.WithRetryDelay(RetryDelay)
		}
		return Bound(e).(*Error).GRPCStatus().Err()
	}
	st := status.Convert(err)
	if st.Code() == codes.Unavailable && !hasRetryInfo(st) {
		if out, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryDelay)}); derr == nil {
			st = out
		}
		err = st.Err()
	}
	return Bound(err)
}

func hasRetryInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return true
		}
	}
	return false
}

// PrefixFields returns err with prefix put before the field path of every
// violation of its google.rpc.BadRequest detail; err as it is without one.
// The message of an Error made by InvalidArgument names the fields by their
// new paths too.
func PrefixFields(err error, prefix string) error {
	if e, ok := err.(*Error); ok {
		out := *e
		out.violations = make([]FieldViolation, len(e.violations))
		for i, v := range e.violations {
			if v.Field != "" {
				v.Field = prefix + v.Field
			}
			out.violations[i] = v
		}
		if e.code == codes.InvalidArgument && e.msg == invalidMessage(e.violations) {
			out.msg = invalidMessage(out.violations)
		}
		return &out
	}
	st := status.Convert(err)
	p := st.Proto()
	changed := false
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.BadRequest); ok {
			changed = true
		}
	}
	if !changed {
		return err
	}
	p.Details = nil
	out := status.FromProto(p)
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				if fv.GetField() != "" {
					fv.Field = prefix + fv.GetField()
				}
			}
		}
		if m, ok := d.(protoadapt.MessageV1); ok {
			if next, werr := out.WithDetails(m); werr == nil {
				out = next
			}
		}
	}
	return out.Err()
}
