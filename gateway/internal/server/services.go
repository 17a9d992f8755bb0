package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/httprule"
)

// Handler serves one unary RPC: it fills resp, an empty message of the
// method's output type, from req. The error is an *apierr.Error, or any
// error with a gRPC status; apierr.Finish shapes it on the way out.
type Handler func(ctx context.Context, fullMethod string, req, resp proto.Message) error

// method is one servable RPC with its message types.
type method struct {
	fullMethod string
	in, out    protoreflect.MessageType
	streaming  bool // server-streaming: served by the StreamHandler
}

// serviceDescs builds a grpc.ServiceDesc for every service from its proto
// descriptor, with one generic handler for all methods. The same descs serve
// the network gRPC server and the in-process channel behind the REST mux.
//
// Server-streaming methods are served by streams, through the unary chain
// that *chain points at once the server is built (see method.runStream).
func serviceDescs(services []protoreflect.ServiceDescriptor, h Handler, streams StreamHandler, chain *grpc.UnaryServerInterceptor) ([]*grpc.ServiceDesc, map[string]method, error) {
	if streams == nil {
		streams = noStreams
	}
	var descs []*grpc.ServiceDesc
	methods := map[string]method{}
	for _, sd := range services {
		desc := &grpc.ServiceDesc{
			ServiceName: string(sd.FullName()),
			HandlerType: (*any)(nil),
			Metadata:    sd.ParentFile().Path(),
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			if md.IsStreamingClient() {
				return nil, nil, fmt.Errorf("server: %s: client-streaming methods are not supported", md.FullName())
			}
			in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
			if err != nil {
				return nil, nil, fmt.Errorf("server: %s: %w", md.FullName(), err)
			}
			out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
			if err != nil {
				return nil, nil, fmt.Errorf("server: %s: %w", md.FullName(), err)
			}
			m := method{fullMethod: httprule.FullMethod(md), in: in, out: out, streaming: md.IsStreamingServer()}
			methods[m.fullMethod] = m
			if m.streaming {
				desc.Streams = append(desc.Streams, grpc.StreamDesc{
					StreamName:    string(md.Name()),
					ServerStreams: true,
					Handler:       m.grpcStreamHandler(chain, streams),
				})
				continue
			}
			desc.Methods = append(desc.Methods, grpc.MethodDesc{
				MethodName: string(md.Name()),
				Handler:    m.grpcHandler(h),
			})
		}
		descs = append(descs, desc)
	}
	return descs, methods, nil
}

// grpcHandler adapts h to grpc's method handler shape for the network server.
func (m method) grpcHandler(h Handler) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		req := m.in.New().Interface()
		t := decodeTarget{msg: req}
		if err := dec(&t); err != nil {
			return nil, err
		}
		if t.err != nil {
			// A message that does not decode is the caller's fault, not an
			// internal error; the codec's text is not shown, the fields at
			// fault are named as a REST body's are.
			if len(t.violations) > 0 {
				return nil, apierr.InvalidArgument(t.violations...)
			}
			return nil, apierr.InvalidArgument(apierr.FieldViolation{Description: "the request is not a valid " + string(m.in.Descriptor().FullName()) + " message"})
		}
		resp := m.out.New().Interface()
		handler := func(ctx context.Context, req any) (any, error) {
			if err := h(ctx, m.fullMethod, req.(proto.Message), resp); err != nil {
				return nil, err
			}
			return resp, nil
		}
		if interceptor == nil {
			return handler(ctx, req)
		}
		return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: m.fullMethod}, handler)
	}
}
