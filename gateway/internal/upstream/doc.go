// Package upstream is the HTTP client side of the gateway: a [Pool] sends
// one HTTP/JSON request to one of a service's instances and turns the
// answer, or the failure to get one, into a gRPC status.
//
// # Instances
//
// A pool balances round-robin over its healthy instances. An instance is
// ejected for [Options.EjectFor] after [Options.EjectAfter] consecutive
// failures (one circuit breaker per instance), then one request probes it;
// with the background prober on, an instance is also out while it fails
// GET /healthz. When no instance is healthy the pool still tries one
// ("panic mode") rather than failing without trying.
//
// # Connections
//
// HTTP/1.1 keep-alive connections, up to [Options.MaxConnsPerHost] per
// instance, pooled by valyala/fasthttp's HostClient. An attempt is written
// and read in the caller's goroutine (see conn.go for why and for what
// that takes: cancellation through the connection's deadline, and a check
// of long-idle connections before reuse). [Options.Hook] wraps every
// attempt, for tracing.
//
// # Retries
//
// GET, PUT and DELETE are retried on another instance after a broken
// connection or HTTP 502, 503 or 504. A POST is not, with one exception: a
// connection that could not be opened (refused, unreachable, dial timeout)
// never carried the request, so any method is retried then. At most
// [Options.MaxAttempts] attempts, each on a different instance, all within
// the caller's deadline.
//
// # Errors
//
// A non-2xx answer becomes an *apierr.Error. A gRPC code in the body
// wins: {"code": "NOT_FOUND", "message": "..."} is NOT_FOUND with that
// message (a numeric code, as in google.rpc.Status, too). Otherwise 422
// (FastAPI validation) is INVALID_ARGUMENT with a message made of the
// "detail" list ("quantity: Input should be greater than 0"), and any
// other status maps as follows:
//
//	400, 422, other 4xx      INVALID_ARGUMENT
//	401                      UNAUTHENTICATED
//	403                      PERMISSION_DENIED
//	404, 410                 NOT_FOUND
//	405, 501                 UNIMPLEMENTED
//	408, 504                 DEADLINE_EXCEEDED
//	409                      ALREADY_EXISTS (this API's conflicts are duplicates)
//	412                      FAILED_PRECONDITION
//	416                      OUT_OF_RANGE
//	429                      RESOURCE_EXHAUSTED
//	499                      CANCELED
//	500                      INTERNAL (a bug in the service: retrying won't help)
//	502, 503, other 5xx      UNAVAILABLE (an outage: retrying later may)
//	1xx, 3xx                 INTERNAL
//
// Without an answer: the caller's cancellation is CANCELED; its deadline,
// or [Options.Timeout], DEADLINE_EXCEEDED ("service_b did not answer in
// time"); a body over [Options.MaxResponseBytes] INTERNAL ("service_b
// response too large"); anything else (refused, reset, DNS, no instance)
// UNAVAILABLE ("service_b unavailable"). Messages reach clients: they come
// from the service's JSON "message" or "detail" or name the service, and
// never carry an address, a raw body or a Go error chain.
package upstream
