// Package forward turns an RPC into one HTTP/JSON call to the service that
// owns it, driven by the RPC's google.api.http rule and a routing table, and
// turns the service's JSON back into the RPC response. It holds no per-RPC
// code: adding an RPC to the proto and a row to the Table is enough.
package forward

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/httprule"
	"github.com/shopgateway/shop/gateway/internal/protofields"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// Doer sends one request to an upstream service. *upstream.Pool implements
// it. A non-2xx answer or a transport failure is returned as a gRPC status
// error.
type Doer interface {
	Do(ctx context.Context, req *upstream.Request) (*upstream.Response, error)
}

// Headers passed from the incoming request's metadata to the upstream call.
var passHeaders = []struct{ md, http string }{
	{reqinfo.RequestIDKey, "X-Request-Id"},
	{reqinfo.TraceparentKey, "Traceparent"},
	{reqinfo.TracestateKey, "Tracestate"},
	// The services keep mutations sent with a key in their own database, so
	// a retry after a gateway restart is still applied once.
	{reqinfo.IdempotencyKey, "Idempotency-Key"},
}

// CartSourceKey is "fallback" on a response served by a fallback route.
const CartSourceKey = "x-cart-source"

// ResponseHeaders are the forwarder's own response metadata with the HTTP
// header each is answered as over REST.
var ResponseHeaders = map[string]string{CartSourceKey: "X-Cart-Source"}

// DeadlineHeader is the call's deadline in Unix milliseconds; a service
// does not commit a mutation after it.
const DeadlineHeader = "X-Request-Deadline"

// Asserter signs the identity assertion sent with every upstream call
// (svcid.Signer): the services trust nothing else about who is calling.
type Asserter interface {
	// Assertion is a signed assertion for audience naming sub with scope.
	Assertion(audience, sub, scope string) (string, error)
	// Self is the gateway's own subject, for calls made on no user's behalf.
	Self() string
}

var (
	marshalOpts   = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	unmarshalOpts = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// route is the compiled form of one RPC's forwarding.
type route struct {
	method       protoreflect.MethodDescriptor
	upstream     string
	doer         Doer
	httpMethod   string
	tmpl         *httprule.Template
	bodyAll      bool
	bodyField    protoreflect.FieldDescriptor
	queryFields  []protoreflect.FieldDescriptor
	respField    protoreflect.FieldDescriptor
	fallback     *route
	fallbackReq  protoreflect.MessageType
	fallbackResp protoreflect.MessageType
	asserter     Asserter
}

// Defaults of Options.
const (
	// DefaultFallbackFraction is the share of the caller's remaining
	// deadline that the primary of an RPC with a fallback may use.
	DefaultFallbackFraction = 0.5
	// DefaultFallbackMax bounds the primary's budget.
	DefaultFallbackMax = time.Second
	// DefaultTimeout is the deadline assumed when the caller set none, for
	// the budget: the upstream pools' default bound (10s).
	DefaultTimeout = upstream.DefaultTimeout
)

// Options tune a Forwarder. Zero fields take the defaults above.
type Options struct {
	// FallbackFraction is the share (0 < f <= 1) of the caller's remaining
	// deadline given to the primary of an RPC with a fallback (GetCart on
	// service B) before the fallback (service A) answers instead. Default
	// DefaultFallbackFraction (0.5).
	FallbackFraction float64
	// FallbackMax bounds the primary's budget whatever the deadline, so a
	// hung owner costs a cart read at most this much. Default
	// DefaultFallbackMax (1s).
	FallbackMax time.Duration
	// Timeout is the deadline of a call whose caller set none. Default
	// DefaultTimeout (10s).
	Timeout time.Duration
	// Asserter signs the identity assertion of every call. Required.
	Asserter Asserter
}

func (o *Options) setDefaults() {
	o.FallbackFraction = cmp.Or(o.FallbackFraction, DefaultFallbackFraction)
	o.FallbackMax = cmp.Or(o.FallbackMax, DefaultFallbackMax)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	if o.FallbackFraction <= 0 || o.FallbackFraction > 1 {
		errs = append(errs, fmt.Errorf("fallback fraction %v: want 0 < f <= 1", o.FallbackFraction))
	}
	if o.FallbackMax < 0 {
		errs = append(errs, fmt.Errorf("fallback max %s is negative", o.FallbackMax))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", o.Timeout))
	}
	if o.Asserter == nil {
		errs = append(errs, errors.New("no identity asserter: the services refuse calls without an assertion"))
	}
	return errors.Join(errs...)
}

// Forwarder forwards RPCs to their upstream services.
type Forwarder struct {
	routes map[string]*route // by full method "/pkg.Service/Method"
	opts   Options
}

// New compiles the forwarding of every method of services. Every method must
// have a route in table, an HTTP rule, and a Doer for its upstream in doers;
// every table row must name a method of services. All problems are reported
// at once.
func New(services []protoreflect.ServiceDescriptor, table Table, doers map[string]Doer, opts Options) (*Forwarder, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	f := &Forwarder{routes: map[string]*route{}, opts: opts}
	byName := map[protoreflect.FullName]*route{}
	var errs []string
	for _, sd := range services {
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			if httprule.Streaming(md) {
				continue // served by the gateway itself, not forwarded
			}
			rt, ok := table[md.FullName()]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: no route in the table", md.FullName()))
				continue
			}
			r, err := compile(md, rt, doers)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			r.asserter = opts.Asserter
			f.routes[httprule.FullMethod(md)] = r
			byName[md.FullName()] = r
		}
	}
	for name, rt := range table {
		r, ok := byName[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: in the table but not a served method", name))
			continue
		}
		if rt.Fallback == "" {
			continue
		}
		fb, ok := byName[rt.Fallback]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: fallback %s is not a served method", name, rt.Fallback))
			continue
		}
		r.fallback = fb
		var err error
		if r.fallbackReq, err = protoregistry.GlobalTypes.FindMessageByName(fb.method.Input().FullName()); err != nil {
			errs = append(errs, err.Error())
		}
		if r.fallbackResp, err = protoregistry.GlobalTypes.FindMessageByName(fb.method.Output().FullName()); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("forward: %s", strings.Join(errs, "; "))
	}
	return f, nil
}

func compile(md protoreflect.MethodDescriptor, rt Route, doers map[string]Doer) (*route, error) {
	doer, ok := doers[rt.Upstream]
	if !ok || doer == nil {
		return nil, fmt.Errorf("%s: no upstream %q", md.FullName(), rt.Upstream)
	}
	p, err := planOf(md, rt)
	if err != nil {
		return nil, err
	}
	return &route{method: md, upstream: rt.Upstream, doer: doer, httpMethod: p.HTTPMethod, tmpl: p.Template,
		bodyAll: p.BodyAll, bodyField: p.BodyField, queryFields: p.Query, respField: p.ResponseField}, nil
}

// Handle forwards one RPC. req is the request message, resp an empty response
// message of the method's output type that Handle fills. The error is a gRPC
// status error; an UNAVAILABLE one (no instance to call, or the service said
// so) comes with Retry-After: 1 in the response metadata, so that a client
// told to come back knows when.
func (f *Forwarder) Handle(ctx context.Context, fullMethod string, req, resp proto.Message) error {
	err := f.handle(ctx, fullMethod, req, resp)
	if status.Code(err) == codes.Unavailable {
		_ = grpc.SetHeader(ctx, metadata.Pairs(reqinfo.RetryAfterKey, "1"))
	}
	return err
}

func (f *Forwarder) handle(ctx context.Context, fullMethod string, req, resp proto.Message) error {
	r, ok := f.routes[fullMethod]
	if !ok {
		return apierr.Errorf(codes.Unimplemented, "method %s is not forwarded", fullMethod)
	}
	if _, ok := ctx.Deadline(); !ok {
		// Every call has a deadline, and the service is told it
		// (DeadlineHeader): a mutation commits before it or not at all.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.opts.Timeout)
		defer cancel()
	}
	if r.fallback == nil {
		return r.call(ctx, req, resp)
	}
	pctx, cancel := context.WithTimeout(ctx, f.budget(ctx))
	err := r.call(pctx, req, resp)
	cancel()
	// The primary's budget running out is DEADLINE_EXCEEDED, fallback-worthy;
	// the caller's own deadline or cancellation is not.
	if err == nil || ctx.Err() != nil || !fallbackWorthy(err) {
		return err
	}
	fbReq := r.fallbackReq.New()
	fbResp := r.fallbackResp.New()
	if cerr := protofields.CopyByName(fbReq, req.ProtoReflect()); cerr != nil {
		return err
	}
	if ferr := r.fallback.call(ctx, fbReq.Interface(), fbResp.Interface()); ferr != nil {
		// The primary's error says more about what is wrong.
		return err
	}
	proto.Reset(resp)
	if cerr := protofields.CopyByName(resp.ProtoReflect(), fbResp); cerr != nil {
		return apierr.New(codes.Internal, "fallback answer does not fit the response")
	}
	if info := reqinfo.FromContext(ctx); info != nil {
		info.Fallback = true
	}
	// Outside a gRPC call (direct use in tests) there is no stream to set the
	// header on; that is not an error of the RPC.
	_ = grpc.SetHeader(ctx, metadata.Pairs(CartSourceKey, "fallback"))
	return nil
}

// budget is how long the primary of an RPC with a fallback may take: a
// fraction of the caller's remaining deadline (Options.Timeout when it set
// none), at most FallbackMax, so that the fallback still has the rest.
func (f *Forwarder) budget(ctx context.Context) time.Duration {
	left := f.opts.Timeout
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	return min(time.Duration(float64(left)*f.opts.FallbackFraction), f.opts.FallbackMax)
}

// fallbackWorthy reports whether an error of the primary means the owner is
// unavailable (refused, timed out, 5xx, circuit open), as opposed to an
// answer about the request itself.
func fallbackWorthy(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown:
		return true
	}
	return false
}
