package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/shopgateway/shop/gateway/internal/apierr"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// Causes of a failed attempt that are not transport errors. They are
// wrapped with %w into the attempt's error and turned into a gRPC status by
// statusFromError.
var (
	errTooLarge   = errors.New("response too large")
	errNoInstance = errors.New("no instance to try")
	errBadRequest = errors.New("invalid upstream request")
)

// This file is where the upstream client makes its errors (apierr.Error,
// turned into gRPC statuses at the edge by apierr.Finish). Their messages
// reach clients: they name the service and nothing else about the network
// (no URLs, no addresses, no Go error chains).

// poolErrors are the transport-level statuses of one pool, made once so a
// storm of refused connections costs no allocations for the status itself.
type poolErrors struct {
	unavailable error
	deadline    error
	canceled    error
	tooLarge    error
	badRequest  error
}

func newPoolErrors(service string) poolErrors {
	return poolErrors{
		unavailable: apierr.New(codes.Unavailable, service+" unavailable"),
		deadline:    apierr.New(codes.DeadlineExceeded, service+" did not answer in time"),
		canceled:    apierr.New(codes.Canceled, "request canceled"),
		tooLarge:    apierr.New(codes.Internal, service+" response too large"),
		badRequest:  apierr.New(codes.Internal, "invalid request to "+service),
	}
}

// statusFromError maps an attempt that got no complete HTTP answer to a
// gRPC status: the caller's context first (CANCELED, DEADLINE_EXCEEDED,
// also when the pool's own Timeout fired), then an oversized body
// (INTERNAL), and everything else (refused, reset, DNS, dial timeout, no
// instance) as UNAVAILABLE.
func (e *poolErrors) statusFromError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return e.canceled
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return e.deadline
	case errors.Is(err, errTooLarge):
		return e.tooLarge
	case errors.Is(err, errBadRequest):
		return e.badRequest
	default:
		return e.unavailable
	}
}

// errorBody is the services' error format, {"code": "NOT_FOUND",
// "message": "..."}, plus FastAPI's "detail" (a string, or a list of
// validation errors). google.rpc.Status JSON ({"code": 5, ...}) is read too.
type errorBody struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail"`
	// Reason is a service's machine-readable cause ("OUT_OF_STOCK"),
	// answered to clients as a google.rpc.ErrorInfo.
	Reason string `json:"reason"`
}

// validationError is one entry of FastAPI's 422 "detail" list.
type validationError struct {
	Loc []json.RawMessage `json:"loc"`
	Msg string            `json:"msg"`
}

// statusFromHTTP maps a non-2xx answer of service to an *apierr.Error.
// A known gRPC code in the body wins (a service says what it means);
// without one, 422 (FastAPI validation) is INVALID_ARGUMENT and any other
// status goes through codeFromHTTP. The message is the body's "message",
// else one built from "detail", else "<service> answered HTTP <status>".
func statusFromHTTP(service string, httpStatus int, body []byte, bodyField string) error {
	var eb errorBody
	if len(body) > 0 && json.Unmarshal(body, &eb) != nil {
		eb = errorBody{} // Not JSON (a proxy's HTML page): status only, never the raw body.
	}
	code, ok := parseCode(eb.Code)
	if !ok {
		code = codeFromHTTP(httpStatus)
	}
	if code == codes.Unauthenticated {
		// The service refused the gateway's identity assertion, not the
		// client's token (that is checked here first): a misconfigured key,
		// never the client's fault, and never passed on as a 401 that would
		// send the client to fetch a new token.
		return apierr.New(codes.Internal, service+" did not accept the gateway's identity assertion")
	}
	msg := strings.TrimSpace(eb.Message)
	if msg == "" {
		msg = detailMessage(eb.Detail)
	}
	if msg == "" {
		msg = service + " answered HTTP " + strconv.Itoa(httpStatus)
	}
	e := apierr.New(code, msg).WithReason(eb.Reason)
	if code == codes.InvalidArgument {
		e = e.WithViolations(fieldViolations(eb.Detail, bodyField)...)
	}
	return e
}

// fieldViolations turns FastAPI's validation list into field violations
// with proto-style paths relative to the request message
// ("items[0].quantity", "item.price_cents" when the body is the request's
// item field); nil when detail is not such a list.
func fieldViolations(raw json.RawMessage, bodyField string) []apierr.FieldViolation {
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var list []validationError
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	out := make([]apierr.FieldViolation, 0, len(list))
	for _, v := range list {
		msg := strings.TrimPrefix(v.Msg, "Value error, ")
		if msg == "" {
			msg = "invalid value"
		}
		out = append(out, apierr.FieldViolation{Field: fieldPath(v.Loc, bodyField), Description: msg})
	}
	return out
}

// fieldPath is a validation error's location as a field path in proto
// names: the leading request part left out, list indexes in brackets.
func fieldPath(loc []json.RawMessage, bodyField string) string {
	var b strings.Builder
	for i, raw := range loc {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			b.WriteString("[" + string(raw) + "]") // A list index.
			continue
		}
		if i == 0 && len(loc) > 1 {
			switch s {
			case "body":
				b.WriteString(bodyField)
				continue
			case "query", "path", "header", "cookie":
				continue
			}
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// codeFromHTTP maps an HTTP status without a code in the body to a gRPC
// code. 409 is ALREADY_EXISTS because duplicates are this API's conflicts
// (a service reports ABORTED by name). 500 is INTERNAL (a bug in the
// service: retrying won't help) while other unlisted 5xx are UNAVAILABLE
// (an outage or an overloaded proxy: retrying later may). Unlisted 4xx are
// INVALID_ARGUMENT; 1xx and 3xx, which a service should never send, are
// INTERNAL.
func codeFromHTTP(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound, http.StatusGone:
		return codes.NotFound
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case http.StatusRequestedRangeNotSatisfiable:
		return codes.OutOfRange
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case 499: // Client closed the request (nginx).
		return codes.Canceled
	case http.StatusInternalServerError:
		return codes.Internal
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	switch {
	case httpStatus >= 400 && httpStatus < 500:
		return codes.InvalidArgument
	case httpStatus >= 500 && httpStatus < 600:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// parseCode reads a gRPC code given by name ("NOT_FOUND") or number (5).
// OK and unknown codes are not codes of an error: ok is false.
func parseCode(raw json.RawMessage) (codes.Code, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	if raw[0] == '"' {
		var name string
		if json.Unmarshal(raw, &name) != nil {
			return 0, false
		}
		raw = []byte(strconv.Quote(strings.ToUpper(strings.TrimSpace(name))))
	}
	// codes.Code reads a number or a quoted upper-case name ("NOT_FOUND").
	var c codes.Code
	if c.UnmarshalJSON(raw) != nil || c == codes.OK {
		return 0, false
	}
	return c, true
}

// detailMessage makes one line of FastAPI's "detail": a string as is, a
// validation list as "quantity: Input should be greater than 0; user_id:
// Field required". The leading location ("body", "query", "path") is left
// out, as service_a does: which part of the upstream request carried a
// field is the gateway's business, not the client's.
func detailMessage(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var list []validationError
	if json.Unmarshal(raw, &list) != nil {
		return ""
	}
	var b strings.Builder
	for i, v := range list {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(location(v.Loc))
		b.WriteString(": ")
		msg := strings.TrimPrefix(v.Msg, "Value error, ")
		if msg == "" {
			msg = "invalid value"
		}
		b.WriteString(msg)
	}
	return b.String()
}

// location joins a validation error's "loc" with dots, without the leading
// request part.
func location(loc []json.RawMessage) string {
	parts := make([]string, 0, len(loc))
	for _, raw := range loc {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			parts = append(parts, s)
		} else {
			parts = append(parts, string(raw)) // A list index.
		}
	}
	if len(parts) > 1 {
		switch parts[0] {
		case "body", "query", "path", "header", "cookie":
			parts = parts[1:]
		}
	}
	if len(parts) == 0 {
		return "request"
	}
	return strings.Join(parts, ".")
}
