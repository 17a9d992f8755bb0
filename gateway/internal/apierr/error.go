package apierr

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Error is the one error type the gateway's packages answer with: a gRPC
// code, a client-facing message, and optionally field violations, a
// google.rpc.ErrorInfo reason, a retry hint and the cause it came from.
// It becomes a gRPC status in one place, its GRPCStatus method, which
// Finish (the exit of every RPC, gRPC and REST alike) and the REST error
// writer go through; the rest of the gateway builds no statuses.
//
// An Error is immutable: the With methods return a changed copy, so an
// Error made once (a pool's "service unavailable") can be shared.
type Error struct {
	code       codes.Code
	msg        string
	violations []FieldViolation
	reason     string
	retryDelay time.Duration
	cause      error
}

// New returns an Error with code and msg. The message reaches clients: it
// must say what went wrong without addresses, Go error chains or secrets
// (keep those for WithCause, which is logged, never answered).
func New(code codes.Code, msg string) *Error {
	return &Error{code: code, msg: msg}
}

// Errorf is New with a message formatted by fmt.Sprintf.
func Errorf(code codes.Code, format string, args ...any) *Error {
	return New(code, fmt.Sprintf(format, args...))
}

// Code returns e's gRPC code.
func (e *Error) Code() codes.Code { return e.code }

// Message returns e's client-facing message.
func (e *Error) Message() string { return e.msg }

// Error returns the same text as the gRPC status error e becomes
// ("rpc error: code = NotFound desc = ..."), so logs read the same whether
// an error was converted yet or not.
func (e *Error) Error() string {
	return fmt.Sprintf("rpc error: code = %s desc = %s", e.code, e.msg)
}

// Unwrap returns the cause set by WithCause, nil without one.
func (e *Error) Unwrap() error { return e.cause }

// WithViolations returns a copy of e with vs added to its field
// violations; those that name a field become the google.rpc.BadRequest
// detail (see InvalidArgument), the others stay in the message only.
func (e *Error) WithViolations(vs ...FieldViolation) *Error {
	out := *e
	out.violations = append(slices.Clip(e.violations), vs...)
	return &out
}

// WithReason returns a copy of e with a google.rpc.ErrorInfo reason in
// ErrorDomain. A reason that is not UPPER_SNAKE_CASE of at most 63
// characters is left out when the status is built, as WithReason of a
// status does.
func (e *Error) WithReason(reason string) *Error {
	out := *e
	out.reason = reason
	return &out
}

// WithRetryDelay returns a copy of e that suggests clients retry after d,
// as a google.rpc.RetryInfo. Without it (d <= 0), Finish gives UNAVAILABLE
// errors RetryDelay.
func (e *Error) WithRetryDelay(d time.Duration) *Error {
	out := *e
	out.retryDelay = d
	return &out
}

// WithCause returns a copy of e that wraps cause, for errors.Is/As and
// logs; the cause never reaches clients.
func (e *Error) WithCause(cause error) *Error {
	out := *e
	out.cause = cause
	return &out
}

// Violations returns e's field violations.
func (e *Error) Violations() []FieldViolation { return slices.Clip(e.violations) }

// GRPCStatus is the one conversion of an Error to the wire: a status with
// e's code and message and, in this order, the google.rpc.BadRequest of its
// violations, the google.rpc.ErrorInfo of its reason and the
// google.rpc.RetryInfo of its retry delay, each only when set. gRPC's
// status.FromError, status.Code and status.Convert call it, so code that
// only reads an error's code needs no change.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.code, e.msg)
	if len(e.violations) > 0 {
		st = WithViolations(st, e.violations)
	}
	if e.reason != "" {
		st = WithReason(st, e.reason)
	}
	if e.retryDelay > 0 {
		if out, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.retryDelay)}); err == nil {
			st = out
		}
	}
	return st
}
