package server

import (
	"context"
	"maps"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/ratelimit"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// RegisterFunc registers one service's REST routes on the mux, calling the
// service through conn. It adapts the generated Register…HandlerClient.
type RegisterFunc func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error

// jsonMarshaler is the REST wire format: proto field names, every scalar
// and list present (0, "" and [] rather than absent), no null anywhere (an
// unset message field is left out, as no field of the API is nullable), and
// unknown request fields rejected with 400 so that a misspelt field is not
// silently dropped; request bodies are decoded strictly (see strictJSON).
var jsonMarshaler = strictJSON{&runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// Incoming HTTP headers passed to the RPC as metadata, besides grpc-gateway's
// defaults (Grpc-Timeout among them).
var incomingHeaders = map[string]bool{
	"X-Request-Id":    true,
	"Traceparent":     true,
	"Tracestate":      true,
	"Idempotency-Key": true,
	"Last-Event-Id":   true, // an EventSource's resume token
}

// Response metadata written back as plain HTTP headers: the server's
// own and the shared keys; the features add theirs (Config.ResponseHeaders).
// Other metadata is not exposed.
var outgoingHeaders = map[string]string{
	reqinfo.RequestIDKey:   "X-Request-Id",
	reqinfo.TraceparentKey: "Traceparent",
	reqinfo.TracestateKey:  "Tracestate",
	reqinfo.ReplayedKey:    "Idempotency-Replayed",
	reqinfo.RetryAfterKey:  "Retry-After",
}

// restRoute is one HTTP binding, for the Allow header of a 405.
type restRoute struct {
	method string
	tmpl   *httprule.Template
	// pattern is the path template as grpc-gateway reports it, body the
	// request field bound to the body ("item"; "" or "*" for none or all).
	pattern, body string
	// stream marks a server-streaming RPC's route.
	stream bool
}

func newMux(ctx context.Context, conn grpc.ClientConnInterface, registers []RegisterFunc, routes []restRoute, sseEvent func(proto.Message) (string, []byte, bool), responseHeaders map[string]string) (*runtime.ServeMux, error) {
	outgoing := maps.Clone(outgoingHeaders)
	maps.Copy(outgoing, responseHeaders)
	bodyFields := map[string]string{}
	for _, rt := range routes {
		if rt.body != "" && rt.body != "*" {
			bodyFields[rt.method+" "+rt.pattern] = rt.body
		}
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonMarshaler),
		runtime.WithMarshalerOption(mimeEventStream, &sseMarshaler{json: jsonMarshaler, event: sseEvent}),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			if incomingHeaders[textproto.CanonicalMIMEHeaderKey(h)] {
				return strings.ToLower(h), true
			}
			return runtime.DefaultHeaderMatcher(h)
		}),
		runtime.WithOutgoingHeaderMatcher(func(k string) (string, bool) {
			h, ok := outgoing[k]
			return h, ok
		}),
		runtime.WithRoutingErrorHandler(routingErrorHandler(routes)),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			// A body cut at the size limit is 413 with a google.rpc.Status,
			// not the decode error grpc-gateway sees; a 401 carries only the
			// gateway's RFC 6750 challenge (challengeWriter).
			if limit, ok := bodyTooLarge(r); ok {
				writeError(w, http.StatusRequestEntityTooLarge, tooLarge(limit))
				return
			}
			for k, vs := range headerMDOf(err) { // a stream denied before it began
				if h, ok := outgoing[k]; ok {
					for _, v := range vs {
						w.Header().Add(h, v)
					}
				}
			}
			runtime.DefaultHTTPErrorHandler(ctx, mux, m, &challengeWriter{ResponseWriter: w}, r, restError(r, err, bodyFieldOf(ctx, r, bodyFields)))
		}),
		runtime.WithDisableHTTPMethodOverride(),
	)
	for _, register := range registers {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

// challengeWriter keeps only the gateway's Bearer challenges in
// WWW-Authenticate (grpc-gateway's error handler also puts the status
// message there): it drops WWW-Authenticate values that are not Bearer
// challenges when the status is written.
type challengeWriter struct{ http.ResponseWriter }

func (c *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		h := c.Header()
		var keep []string
		for _, v := range h.Values("WWW-Authenticate") {
			if strings.HasPrefix(v, "Bearer") {
				keep = append(keep, v)
			}
		}
		if len(keep) == 0 {
			keep = []string{`Bearer realm="shop"`}
		}
		h["Www-Authenticate"] = keep
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// restRoutes lists every HTTP binding of the services.
func restRoutes(services []protoreflect.ServiceDescriptor) ([]restRoute, error) {
	var out []restRoute
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			for _, b := range httprule.Bindings(md) {
				t, err := httprule.CompileTemplate(b.Template, md.Input())
				if err != nil {
					return nil, err
				}
				out = append(out, restRoute{method: b.Method, tmpl: t, pattern: b.Template, body: b.Body, stream: md.IsStreamingServer()})
			}
		}
	}
	return out, nil
}

// routingErrorHandler answers requests that match no route: 404 for an
// unknown path, 405 with Allow for a known path and the wrong method, both
// with a google.rpc.Status JSON body.
func routingErrorHandler(routes []restRoute) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		switch httpStatus {
		case http.StatusMethodNotAllowed, http.StatusNotFound:
			allowed := allowedMethods(routes, r.URL.Path)
			if len(allowed) == 0 {
				writeError(w, http.StatusNotFound, apierr.Errorf(codes.NotFound, "no route for %q", r.URL.Path))
				return
			}
			writeMethodNotAllowed(w, r.Method, r.URL.Path, allowed)
		default:
			runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		}
	}
}

func allowedMethods(routes []restRoute, path string) []string {
	seen := map[string]bool{}
	var out []string
	for _, rt := range routes {
		if !seen[rt.method] && rt.tmpl.Match(path) {
			seen[rt.method] = true
			out = append(out, rt.method)
		}
	}
	sort.Strings(out)
	return out
}

// literalRoutes maps each variable-free path template ("/order/pay") to the
// methods bound to it.
func literalRoutes(routes []restRoute) map[string][]string {
	out := map[string][]string{}
	for _, rt := range routes {
		if len(rt.tmpl.Vars) > 0 {
			continue
		}
		path := "/" + strings.Join(rt.tmpl.Parts, "/")
		if !slices.Contains(out[path], rt.method) {
			out[path] = append(out[path], rt.method)
		}
	}
	for _, ms := range out {
		sort.Strings(ms)
	}
	return out
}

// writeMethodNotAllowed answers 405 with Allow and an UNIMPLEMENTED status.
func writeMethodNotAllowed(w http.ResponseWriter, method, path string, allowed []string) {
	list := strings.Join(allowed, ", ")
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed,
		apierr.Errorf(codes.Unimplemented, "method %s is not allowed for %q; allowed: %s", method, path, list))
}

// writeError is the REST error writer for the errors answered without an
// RPC: it writes err, shaped by apierr.Status as RPC errors are, as
// google.rpc.Status JSON with the given HTTP status.
func writeError(w http.ResponseWriter, httpStatus int, err error) {
	httpStatus, body := errorBody(httpStatus, err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// errorBody is err as google.rpc.Status JSON, shaped by apierr.Status, with
// the HTTP status to send it with (500 if it cannot be marshalled).
func errorBody(httpStatus int, err error) (int, []byte) {
	body, merr := jsonMarshaler.Marshal(apierr.Status(err).Proto())
	if merr != nil {
		return http.StatusInternalServerError, []byte(`{"code":13,"message":"internal error","details":[]}`)
	}
	return httpStatus, body
}

// statusRecorder remembers the status code written through it. When the
// request is a read (cacheRead) and its RPC is cacheable, a successful
// answer is marked Cache-Control no-cache instead of secureHeaders'
// no-store.
type statusRecorder struct {
	http.ResponseWriter
	status    int
	cacheRead bool
	ri        *reqinfo.Info
	cacheable func(fullMethod string) bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.markCache(code)
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
		r.markCache(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) markCache(code int) {
	if r.cacheRead && code < 300 && r.cacheable != nil && r.ri != nil && r.ri.RPC != "" && r.cacheable(r.ri.RPC) {
		r.Header().Set("Cache-Control", cacheRevalidate)
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// httpMiddleware wraps the REST mux: request id and trace context (the
// client's when valid, else fresh; passed on and echoed in the response),
// Content-Type, Idempotency-Key, Authorization and Grpc-Timeout sent at
// most once each (else 400), a well-formed Grpc-Timeout when one is sent
// (else 400), a JSON Content-Type
// on a body (else 415), a bound on the request body,
// panic recovery, and one access-log line per request.
//
// A request for a known literal path with another method ("GET /order/pay")
// is answered 405 with Allow here: grpc-gateway would otherwise route it to
// a templated route of that method ("GET /order/{order_id}") and answer a
// confusing 400 about the path parameter.
//
// With traced set, the request runs inside a server span (the tracing
// handler wraps this one): the span's context becomes the traceparent passed
// on, and the span is named after the route once it is known.
func httpMiddleware(next http.Handler, al *accessLog, maxBody int64, literal map[string][]string, traced bool, trusted []netip.Prefix, cacheable func(string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var span trace.Span
		if traced {
			span = trace.SpanFromContext(r.Context())
		}
		ids := resolveIDs(r.Context(), headerCarrier(r.Header), traced)
		setIDs(headerCarrier(w.Header()), ids)
		ri := &reqinfo.Info{RequestID: ids.RequestID, Traceparent: ids.Traceparent, ClientIP: ratelimit.ClientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), trusted)}
		if span != nil {
			defer nameSpan(span, r.Method, ri)
		}
		method := r.Method
		r = r.WithContext(reqinfo.NewContext(r.Context(), ri))
		if r.Method == http.MethodHead {
			// HEAD is GET without the body: route it as GET on this copy of
			// the request; the server still knows the request was HEAD and
			// sends no body.
			r.Method = http.MethodGet
		}
		rec := &statusRecorder{ResponseWriter: w, ri: ri, cacheable: cacheable, cacheRead: r.Method == http.MethodGet}
		if maxBody > 0 && r.ContentLength > maxBody {
			writeError(rec, http.StatusRequestEntityTooLarge, tooLarge(maxBody))
			al.write(r.Context(), ri, "http", method, r.URL.Path, rec.status, time.Since(start))
			return
		}
		defer func() {
			if p := recover(); p != nil {
				logPanic(r.Context(), al.log, r.URL.Path, p)
				if rec.status == 0 {
					writeError(rec, http.StatusInternalServerError, errInternal)
				}
			}
			al.write(r.Context(), ri, "http", method, r.URL.Path, rec.status, time.Since(start))
		}()
		if ms, ok := literal[r.URL.Path]; ok && !slices.Contains(ms, r.Method) {
			writeMethodNotAllowed(rec, method, r.URL.Path, ms)
			return
		}
		if err := checkSingleHeaders(r.Header); err != nil {
			writeError(rec, http.StatusBadRequest, err)
			return
		}
		if err := checkGrpcTimeout(r.Header); err != nil {
			writeError(rec, http.StatusBadRequest, err)
			return
		}
		if err := queryTokenRefused(r.Context()); err != nil {
			writeError(rec, http.StatusBadRequest, err)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			if r.ContentLength != 0 && !contentTypeOK(r.Header.Get("Content-Type")) {
				writeError(rec, http.StatusUnsupportedMediaType, apierr.Errorf(codes.InvalidArgument,
					"Content-Type %.64q is not supported: send the body as application/json", r.Header.Get("Content-Type")))
				return
			}
			r.Body = newRequestBody(w, r, maxBody)
		}
		next.ServeHTTP(rec, r)
	})
}

// bodyFieldOf is the request field that the matched route binds to the
// body ("item"), or "" when the body is the whole request or there is none.
func bodyFieldOf(ctx context.Context, r *http.Request, bodyFields map[string]string) string {
	pattern, ok := runtime.HTTPPathPattern(ctx)
	if !ok {
		return ""
	}
	return bodyFields[r.Method+" "+pattern]
}

// grpcTimeoutHeader is the REST form of the caller's deadline, which
// grpc-gateway turns into the RPC's deadline.
const grpcTimeoutHeader = "Grpc-Timeout"

// checkGrpcTimeout refuses a Grpc-Timeout header that is sent but is not
// one value of the gRPC form (reqinfo.GrpcTimeoutPattern): grpc-gateway
// would take an empty one or 0 for none (no deadline at all), and more
// than 8 digits run past the spec's limit as a deadline all the same. A
// valid deadline that is very short is kept: it expires, and the answer is
// 504.
func checkGrpcTimeout(h http.Header) error {
	vs, ok := h[grpcTimeoutHeader]
	if !ok {
		return nil
	}
	if len(vs) == 1 && reqinfo.ValidGrpcTimeout(vs[0]) {
		return nil
	}
	const what = "must be one value: a positive number of 1 to 8 digits without leading zeros and a unit (H, M, S, m, u or n), for example 5S"
	return apierr.New(codes.InvalidArgument, "invalid Grpc-Timeout header: "+what).
		WithViolations(apierr.FieldViolation{Field: grpcTimeoutHeader, Description: what})
}
