package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// inprocChannel is a grpc.ClientConnInterface that dispatches unary calls to
// the gateway's own handlers in the caller's goroutine, through the same
// interceptor chain as the network server, without serialising the messages
// or copying them: the handler fills the caller's response message in place.
// The REST mux calls the services through it, so REST requests get recovery,
// logging, events and metrics exactly like gRPC ones, without a loopback hop.
type inprocChannel struct {
	methods     map[string]method
	handler     Handler
	streams     StreamHandler
	interceptor grpc.UnaryServerInterceptor
}

var _ grpc.ClientConnInterface = (*inprocChannel)(nil)

// Invoke runs one unary RPC in process.
func (c *inprocChannel) Invoke(ctx context.Context, fullMethod string, args, reply any, opts ...grpc.CallOption) error {
	if m, ok := c.methods[fullMethod]; !ok || m.streaming {
		return apierr.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
	}
	req, ok1 := args.(proto.Message)
	resp, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return apierr.New(codes.Internal, "in-process call with non-proto messages")
	}
	stream := &inprocStream{method: fullMethod}
	sctx := grpc.NewContextWithServerTransportStream(ctx, stream)
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	handler := func(ctx context.Context, req any) (any, error) {
		if err := c.handler(ctx, fullMethod, req.(proto.Message), resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
	var (
		out any
		err error
	)
	if c.interceptor != nil {
		out, err = c.interceptor(sctx, req, &grpc.UnaryServerInfo{FullMethod: fullMethod}, handler)
	} else {
		out, err = handler(sctx, req)
	}
	// An interceptor may answer without the handler (an idempotent replay
	// returns a stored response); the caller only sees reply.
	if m, ok := out.(proto.Message); ok && err == nil && m != resp {
		proto.Reset(resp)
		proto.Merge(resp, m)
	}
	stream.deliver(opts)
	return err
}

// NewStream starts a server-streaming call in process (the Watch RPCs).
func (c *inprocChannel) NewStream(ctx context.Context, desc *grpc.StreamDesc, fullMethod string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	m, ok := c.methods[fullMethod]
	if !ok || !m.streaming || desc.ClientStreams {
		return nil, apierr.Errorf(codes.Unimplemented, "method %s not implemented", fullMethod)
	}
	return c.newInprocStream(ctx, m), nil
}

// inprocStream collects the header and trailer metadata a handler sets with
// grpc.SetHeader / grpc.SetTrailer, for delivery to the caller's
// grpc.Header / grpc.Trailer call options.
type inprocStream struct {
	method  string
	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
	// For a server-streaming call: onHeader runs when the headers are sent,
	// sent records that a message was.
	onHeader func()
	sent     bool
}

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	s.header = metadata.Join(s.header, md)
	s.mu.Unlock()
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error {
	_ = s.SetHeader(md)
	if s.onHeader != nil {
		s.onHeader()
	}
	return nil
}

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	s.trailer = metadata.Join(s.trailer, md)
	s.mu.Unlock()
	return nil
}

func (s *inprocStream) deliver(opts []grpc.CallOption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			if s.header != nil {
				*o.HeaderAddr = s.header
			}
		case grpc.TrailerCallOption:
			if s.trailer != nil {
				*o.TrailerAddr = s.trailer
			}
		}
	}
}
