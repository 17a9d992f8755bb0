package server

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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

// recoveryInterceptor turns a panic in a handler into INTERNAL and logs it
// with its stack; the client sees no stack trace.
func recoveryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.LogAttrs(ctx, slog.LevelError, "panic in handler",
					slog.String("rpc", info.FullMethod), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// accessInterceptor gives every RPC a request id and a traceparent (taken
// from the caller or generated), records the RPC in the request's
// reqinfo.Info, and writes one access-log line per direct gRPC call. For a
// REST call the HTTP middleware has already done the ids and writes the line
// itself, with the HTTP status.
func accessInterceptor(al *accessLog) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ri := reqinfo.FromContext(ctx)
		direct := ri == nil
		if direct {
			ri = &reqinfo.Info{}
			ctx = reqinfo.NewContext(ctx, ri)
		}
		ri.RPC = info.FullMethod
		md, _ := metadata.FromIncomingContext(ctx)
		id, tp := reqinfo.First(md, reqinfo.RequestIDKey), reqinfo.First(md, reqinfo.TraceparentKey)
		if id == "" || tp == "" {
			md = md.Copy()
			if id == "" {
				id = newRequestID()
				md.Set(reqinfo.RequestIDKey, id)
			}
			if tp == "" {
				tp = newTraceparent()
				md.Set(reqinfo.TraceparentKey, tp)
			}
			ctx = metadata.NewIncomingContext(ctx, md)
		}
		ri.RequestID = id
		if direct {
			_ = grpc.SetHeader(ctx, metadata.Pairs(reqinfo.RequestIDKey, id, reqinfo.TraceparentKey, tp))
		}
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
	attrs := make([]slog.Attr, 0, 13)
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
	if ri.Fallback {
		attrs = append(attrs, slog.Bool("fallback", true))
	}
	if ri.Event != "" {
		attrs = append(attrs, slog.String("event_id", ri.Event))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
}

// The ids below come from math/rand/v2's global generator: the runtime's
// per-thread ChaCha8 stream, seeded from the system's entropy, so they are
// as unpredictable as a v4 UUID needs, at a few nanoseconds and no system
// call or lock per request (crypto/rand costs both).

// newRequestID returns a random UUID (version 4).
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}

// newTraceparent starts a new W3C trace: version 00, random trace and parent
// ids (never all zero, which the format forbids), sampled.
func newTraceparent() string {
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:8], rand.Uint64()|1)
	binary.LittleEndian.PutUint64(b[8:16], rand.Uint64())
	binary.LittleEndian.PutUint64(b[16:24], rand.Uint64()|1)
	var out [55]byte
	copy(out[:], "00-")
	hex.Encode(out[3:35], b[:16])
	out[35] = '-'
	hex.Encode(out[36:52], b[16:])
	copy(out[52:], "-01")
	return string(out[:])
}
