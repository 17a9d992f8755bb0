package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// StreamHandler serves one server-streaming RPC: req is the request,
// already through the interceptor chain (authorized, validated), and send
// delivers one response. It returns when the stream ends; the error is an
// *apierr.Error or any error with a gRPC status (nil ends the stream OK).
type StreamHandler func(ctx context.Context, fullMethod string, req proto.Message, send func(proto.Message) error) error

// noStreams answers every stream UNIMPLEMENTED: the streams of a server
// configured without a StreamHandler.
func noStreams(_ context.Context, fullMethod string, _ proto.Message, _ func(proto.Message) error) error {
	return apierr.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
}

// runStream runs a server-streaming call through the same unary
// interceptor chain as every other RPC (recovery, access log, request
// rules, authorization and rate limit, ...), with the stream's handler as
// the innermost step: a denied call never subscribes. The chain's
// response is an empty message of the output type; the stream's messages
// go through send.
func (m method) runStream(ctx context.Context, chain grpc.UnaryServerInterceptor, h StreamHandler, req proto.Message, send func(proto.Message) error) error {
	handler := func(ctx context.Context, req any) (any, error) {
		if err := h(ctx, m.fullMethod, req.(proto.Message), send); err != nil {
			return nil, err
		}
		return m.out.New().Interface(), nil
	}
	if chain == nil {
		_, err := handler(ctx, req)
		return err
	}
	_, err := chain(ctx, req, &grpc.UnaryServerInfo{FullMethod: m.fullMethod}, handler)
	return err
}

// grpcStreamHandler adapts a server-streaming method for the network
// server: it reads the one request and runs the stream.
func (m method) grpcStreamHandler(chain *grpc.UnaryServerInterceptor, h StreamHandler) grpc.StreamHandler {
	return func(srv any, ss grpc.ServerStream) error {
		req := m.in.New().Interface()
		t := decodeTarget{msg: req}
		if err := ss.RecvMsg(&t); err != nil {
			return err
		}
		if t.err != nil {
			return apierr.InvalidArgument(apierr.FieldViolation{Description: "the request is not a valid " + string(m.in.Descriptor().FullName()) + " message"})
		}
		return m.runStream(ss.Context(), *chain, h, req, func(msg proto.Message) error { return ss.SendMsg(msg) })
	}
}

// inprocClientStream is the client side of a server-streaming call over
// the in-process channel: the REST mux reads it as it would a gRPC stream.
// The server side runs in its own goroutine; each message is handed over
// through an unbuffered channel, so the stream's own bounded buffer (not
// this hand-over) decides when a slow reader is cut off.
type inprocClientStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	start  func(req proto.Message)
	st     *inprocStream

	msgs      chan proto.Message
	done      chan struct{} // closed when the server side returned
	err       error         // its error, readable after done
	headerSet chan struct{} // closed when headers were sent (or done)
	once      sync.Once
	heartbeat time.Duration // when > 0, RecvMsg yields an empty message after this long without one
	beatFirst bool
}

var _ grpc.ClientStream = (*inprocClientStream)(nil)

func (s *inprocClientStream) markHeader() { s.once.Do(func() { close(s.headerSet) }) }

// Header waits until the server side sent its headers or ended. A stream
// that ended before any header (a denial) returns its error here, with its
// metadata attached, so that REST answers it like a unary error.
func (s *inprocClientStream) Header() (metadata.MD, error) {
	select {
	case <-s.headerSet:
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
	s.st.mu.Lock()
	md := s.st.header
	s.st.mu.Unlock()
	select {
	case <-s.done:
		if s.err != nil && !s.sentAny() {
			return nil, &headerError{error: s.err, md: md}
		}
	default:
	}
	return md, nil
}

func (s *inprocClientStream) sentAny() bool {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.sent
}

func (s *inprocClientStream) Trailer() metadata.MD {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.trailer
}

func (s *inprocClientStream) CloseSend() error         { return nil }
func (s *inprocClientStream) Context() context.Context { return s.ctx }

// SendMsg takes the one request and starts the server side.
func (s *inprocClientStream) SendMsg(m any) error {
	req, ok := m.(proto.Message)
	if !ok {
		return apierr.New(codes.Internal, "in-process call with non-proto messages")
	}
	s.start(req)
	return nil
}

// RecvMsg takes the next message into m; io.EOF when the stream ended OK.
// With a heartbeat set, an empty m comes back when nothing arrived for
// that long (and once at the start), for the REST edge to keep the
// connection alive.
func (s *inprocClientStream) RecvMsg(m any) error {
	out, ok := m.(proto.Message)
	if !ok {
		return apierr.New(codes.Internal, "in-process call with non-proto messages")
	}
	var tick <-chan time.Time
	if s.heartbeat > 0 {
		if !s.beatFirst {
			s.beatFirst = true
			proto.Reset(out)
			return nil
		}
		t := time.NewTimer(s.heartbeat)
		defer t.Stop()
		tick = t.C
	}
	select {
	case msg := <-s.msgs:
		proto.Reset(out)
		proto.Merge(out, msg)
		return nil
	case <-s.done:
		// A message handed over just before the end is still delivered.
		select {
		case msg := <-s.msgs:
			proto.Reset(out)
			proto.Merge(out, msg)
			return nil
		default:
		}
		if s.err == nil {
			return io.EOF
		}
		return s.err
	case <-tick:
		proto.Reset(out)
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// headerError is a stream's error before any response, with the header
// metadata the interceptors set (a Bearer challenge, Retry-After).
type headerError struct {
	error
	md metadata.MD
}

func (e *headerError) Unwrap() error { return e.error }

// headerMDOf is the metadata an error carries, if any.
func headerMDOf(err error) metadata.MD {
	var he *headerError
	if errors.As(err, &he) {
		return he.md
	}
	return nil
}

// heartbeatKey marks a REST request whose stream wants heartbeats (SSE).
type heartbeatKey struct{}

// withHeartbeat asks the in-process stream of ctx's call for heartbeats.
func withHeartbeat(ctx context.Context, every time.Duration) context.Context {
	return context.WithValue(ctx, heartbeatKey{}, every)
}

// newInprocStream starts a server-streaming call in process.
func (c *inprocChannel) newInprocStream(ctx context.Context, m method) *inprocClientStream {
	ctx, cancel := context.WithCancel(ctx)
	st := &inprocStream{method: m.fullMethod}
	cs := &inprocClientStream{ctx: ctx, cancel: cancel, st: st, msgs: make(chan proto.Message),
		done: make(chan struct{}), headerSet: make(chan struct{})}
	cs.heartbeat, _ = ctx.Value(heartbeatKey{}).(time.Duration)
	st.onHeader = cs.markHeader
	sctx := grpc.NewContextWithServerTransportStream(ctx, st)
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	cs.start = func(req proto.Message) {
		go func() {
			// done closes before the header mark, so that Header sees
			// a stream that ended before any header as ended.
			defer cs.markHeader()
			defer close(cs.done)
			cs.err = m.runStream(sctx, c.interceptor, c.streams, req, func(msg proto.Message) error {
				st.mu.Lock()
				st.sent = true
				st.mu.Unlock()
				cs.markHeader()
				select {
				case cs.msgs <- msg:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
	}
	return cs
}
