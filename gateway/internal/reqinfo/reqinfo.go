// Package reqinfo carries per-request facts between the layers of the gateway:
// the HTTP or gRPC edge creates an Info, the forwarder and the event emitter
// fill in what they learn, and the edge writes one access-log line from it.
package reqinfo

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// Metadata keys of more than one feature: the request id and trace
// context every layer passes on, the idempotency key the event emitter
// matches and the forwarder sends on, the replay mark either may set, and
// Retry-After, which the rate limit and the forwarder both answer with.
// Through the REST mux they are the HTTP headers of the same names. A key
// of one feature is declared by it, with the HTTP header it answers as
// (auth.ResponseHeaders, forward.ResponseHeaders), and given to the server.
const (
	// RequestIDKey carries X-Request-Id (generated when absent).
	RequestIDKey = "x-request-id"
	// TraceparentKey carries the W3C traceparent (a new trace when absent).
	TraceparentKey = "traceparent"
	// TracestateKey carries the W3C tracestate, passed on as is.
	TracestateKey = "tracestate"
	// IdempotencyKey carries the client's Idempotency-Key.
	IdempotencyKey = "idempotency-key"
	// ReplayedKey is "true" on a response answered from the idempotency
	// store.
	ReplayedKey = "idempotency-replayed"
	// RetryAfterKey carries the seconds to wait (Retry-After) after a 429
	// or an UNAVAILABLE.
	RetryAfterKey = "retry-after"
)

// First returns the first value of key in md, or "".
func First(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Info describes one request as it passes through the gateway. It is owned by
// the request's goroutine chain; fields are written before the access log is
// written and read after, so no locking is needed.
type Info struct {
	// RequestID is the X-Request-Id of the request (given or generated).
	RequestID string
	// Traceparent is the W3C traceparent of the request as the gateway
	// passes it on: its own server span's when tracing is on, else the
	// caller's or a generated one. The access log takes trace_id and span_id
	// from it.
	Traceparent string
	// Route is the REST path template the request matched, for example
	// "/stock/{product_id}"; empty for gRPC.
	Route string
	// RPC is the full gRPC method, for example
	// "/shop.stock.v1.StockService/GetStock"; empty when no RPC matched.
	RPC string
	// Code is the gRPC status code the RPC ended with.
	Code codes.Code
	// Upstream is the name of the service the RPC was forwarded to.
	Upstream string
	// Instance is the base URL of the upstream instance that answered.
	Instance string
	// Attempts counts upstream attempts (retries included).
	Attempts int
	// Fallback is true when the answer came from a fallback route.
	Fallback bool
	// Event is the id of the event emitted for the request, if any.
	Event string
	// ClientIP is the client's address as the REST edge resolved it (the
	// peer, or X-Forwarded-For through a trusted proxy); empty for a direct
	// gRPC call, whose peer is in the context.
	ClientIP string
}

type ctxKey struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// FromContext returns the Info in ctx, or nil when there is none.
func FromContext(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// Caller is the authenticated caller of a request, named to the services in
// the signed identity assertion of each call (see package svcid).
type Caller struct {
	// UserID is the caller's user id (the token's subject).
	UserID int64
	// Scopes are the caller's scopes, space-separated.
	Scopes string
	// Expiry is when the caller's token expires (zero: never); a stream
	// ends then.
	Expiry time.Time
}

type callerKey struct{}

// WithCaller returns ctx carrying the authenticated caller.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller in ctx, or nil for an
// anonymous call.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}
