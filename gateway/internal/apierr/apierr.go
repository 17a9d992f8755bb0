// Package apierr shapes the errors the gateway answers with: messages
// bounded in size (a gRPC client cannot receive a status of several
// hundred kilobytes, and a REST client should not have to), and
// INVALID_ARGUMENT statuses built from field violations, so that every
// bad-input error names the field and says what is wrong with it.
package apierr

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
// message bounded.
func InvalidArgument(vs ...FieldViolation) error {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return status.Error(codes.InvalidArgument, BoundMessage("invalid request: "+strings.Join(parts, "; ")))
}
