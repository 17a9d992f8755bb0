package server

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// loopbackConn is a gRPC client to the gateway's own gRPC listener, dialled
// on first use once the listener's address is known. It is the classic
// grpc-gateway deployment, kept only to be benchmarked against.
type loopbackConn struct {
	addr atomic.Value // string
	once sync.Once
	cc   *grpc.ClientConn
	err  error
}

func (l *loopbackConn) conn() (*grpc.ClientConn, error) {
	addr, _ := l.addr.Load().(string)
	if addr == "" {
		return nil, status.Error(codes.Unavailable, "gRPC listener not started")
	}
	l.once.Do(func() {
		l.cc, l.err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	return l.cc, l.err
}

func (l *loopbackConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := l.conn()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

func (l *loopbackConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := l.conn()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}
