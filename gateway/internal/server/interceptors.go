package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// chainUnary composes interceptors so that the first is the outermost.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	switch len(ics) {
	case 0:
		return nil
	case 1:
		return ics[0]
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(ics) - 1; i > 0; i-- {
			ic, h := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, h) }
		}
		return ics[0](ctx, req, info, next)
	}
}

// errInternal is the answer to a panic, over gRPC and REST alike: the
// client learns nothing of it beyond INTERNAL.
var errInternal = apierr.New(codes.Internal, "internal error")

// recoveryInterceptor is the outermost interceptor: it turns a panic in a
// handler into INTERNAL (logged with its stack; the client sees no stack
// trace) and finishes every error status it passes on (apierr.Finish:
// RetryInfo on UNAVAILABLE, the message bounded), the one place all RPC
// errors go through on their way to REST and gRPC clients.
func recoveryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				logPanic(ctx, log, info.FullMethod, p)
				resp, err = nil, errInternal
			}
			err = apierr.Finish(err)
		}()
		return handler(ctx, req)
	}
}

// logPanic logs a recovered panic with its stack; the REST middleware and
// the gRPC interceptor both report panics through it.
func logPanic(ctx context.Context, log *slog.Logger, where string, p any) {
	log.LogAttrs(ctx, slog.LevelError, "panic in handler",
		slog.String("rpc", where), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
}

// accessInterceptor gives every RPC a request id and a trace context
// (reqinfo.Resolve: the caller's when valid, else fresh), records the RPC
// in the request's reqinfo.Info, and writes one access-log line per direct
// gRPC call. For a REST call the HTTP middleware has already resolved the
// ids (with the same function) and writes the line itself, with the HTTP
// status.
//
// With traced set, a direct call runs inside the server span of the gRPC
// stats handler, whose context becomes the traceparent passed on; a REST
// call records its route for the HTTP middleware to name its span.
func accessInterceptor(al *accessLog, traced bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ri := reqinfo.FromContext(ctx)
		direct := ri == nil
		if direct {
			ri = &reqinfo.Info{}
			ctx = reqinfo.NewContext(ctx, ri)
			md, _ := metadata.FromIncomingContext(ctx)
			in := &mdCarrier{md: md}
			ids := resolveIDs(ctx, in, traced)
			if in.copied {
				ctx = metadata.NewIncomingContext(ctx, in.md)
			}
			ri.RequestID = ids.RequestID
			ri.Traceparent = ids.Traceparent
			out := &mdCarrier{md: metadata.MD{}, copied: true}
			setIDs(out, ids)
			_ = grpc.SetHeader(ctx, out.md)
		} else if traced {
			ri.Route, _ = runtime.HTTPPathPattern(ctx)
		}
		ri.RPC = info.FullMethod
		start := time.Now()
		resp, err := handler(ctx, req)
		ri.Code = status.Code(err)
		if direct {
			al.write(ctx, ri, "grpc", "POST", info.FullMethod, 0, time.Since(start))
		}
		return resp, err
	}
}

// ObserveFunc receives every finished request, for metrics.
type ObserveFunc func(protocol string, ri *reqinfo.Info, httpStatus int, d time.Duration)

// accessLog writes the one access-log line of each request and hands the
// request to the metrics observer.
type accessLog struct {
	log     *slog.Logger
	observe ObserveFunc
}

func (al *accessLog) write(ctx context.Context, ri *reqinfo.Info, proto, method, path string, httpStatus int, d time.Duration) {
	if al.observe != nil {
		al.observe(proto, ri, httpStatus, d)
	}
	logAccess(ctx, al.log, ri, proto, method, path, httpStatus, d)
}

// logAccess writes the access-log line of one request.
func logAccess(ctx context.Context, log *slog.Logger, ri *reqinfo.Info, proto, method, path string, httpStatus int, d time.Duration) {
	attrs := make([]slog.Attr, 0, 15)
	attrs = append(attrs,
		slog.String("protocol", proto),
		slog.String("method", method),
		slog.String("path", path),
		slog.String("rpc", ri.RPC),
	)
	if ri.RPC != "" {
		attrs = append(attrs, slog.String("code", ri.Code.String()))
	}
	if httpStatus != 0 {
		attrs = append(attrs, slog.Int("status", httpStatus))
	}
	attrs = append(attrs,
		slog.String("upstream", ri.Upstream),
		slog.String("instance", ri.Instance),
		slog.Int("attempts", ri.Attempts),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("request_id", ri.RequestID),
	)
	if traceID, spanID, ok := traceIDs(ri.Traceparent); ok {
		attrs = append(attrs, slog.String("trace_id", traceID), slog.String("span_id", spanID))
	}
	if ri.Fallback {
		attrs = append(attrs, slog.Bool("fallback", true))
	}
	if ri.Event != "" {
		attrs = append(attrs, slog.String("event_id", ri.Event))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
}

// withSpan makes the current span's context the traceparent passed on,
// when there is a span.
func withSpan(ctx context.Context, ids reqinfo.IDs) reqinfo.IDs {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		if tp := traceparentOf(sc); tp != ids.Traceparent {
			ids.Traceparent, ids.Changed = tp, true
		}
	}
	return ids
}

// traceparentOf formats a span context as a W3C traceparent.
func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// traceIDs returns the trace and parent ids of a valid traceparent.
func traceIDs(tp string) (traceID, spanID string, ok bool) {
	if !reqinfo.ValidTraceparent(tp) {
		return "", "", false
	}
	return tp[3:35], tp[36:52], true
}

// nameSpan names a REST request's server span after its route, as
// OpenTelemetry's HTTP conventions ask ("GET /stock/{product_id}"), once
// the route is known, and adds the RPC.
func nameSpan(span trace.Span, method string, ri *reqinfo.Info) {
	if ri.Route != "" {
		span.SetName(method + " " + ri.Route)
		span.SetAttributes(attribute.String("http.route", ri.Route))
	}
	if ri.RPC != "" {
		span.SetAttributes(attribute.String("rpc.method", ri.RPC))
	}
}
