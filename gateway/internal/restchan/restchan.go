// Package restchan holds the channels from the REST mux to the services that
// the gateway did not choose, for benchmarks to measure the in-process
// channel against (server.Config.RESTChannel). Only benchmarks import it, so
// neither it nor grpchan is in the gateway binary.
package restchan

import (
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shopgateway/shop/gateway/internal/server"
)

// Grpchan reaches the services through grpchan's inprocgrpc channel: in
// process and through the interceptor chain, but with a goroutine and a
// message copy per call.
func Grpchan(descs []*grpc.ServiceDesc, chain grpc.UnaryServerInterceptor) grpc.ClientConnInterface {
	ch := (&inprocgrpc.Channel{}).WithServerUnaryInterceptor(chain).WithCloner(cloner{copy: server.RequestCopier(inprocgrpc.ProtoCloner{}.Copy)})
	for _, d := range descs {
		ch.RegisterService(d, struct{}{})
	}
	return ch
}

// cloner is grpchan's ProtoCloner copying through the server's request
// copier.
type cloner struct {
	inprocgrpc.ProtoCloner
	copy func(out, in any) error
}

// Copy copies in into out.
func (c cloner) Copy(out, in any) error { return c.copy(out, in) }

// Loopback reaches the services through a gRPC client to the gateway's own
// gRPC listener at addr: the classic grpc-gateway deployment. The client
// connects on first use, so the listener need only exist; close releases
// it once the gateway is stopped.
func Loopback(addr string) (ch server.RESTChannelFunc, close func(), err error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return func([]*grpc.ServiceDesc, grpc.UnaryServerInterceptor) grpc.ClientConnInterface { return cc }, func() { cc.Close() }, nil
}
