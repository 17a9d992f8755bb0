// Package server serves the shop API over gRPC and over REST. REST is
// transcoded by grpc-gateway and dispatched in process, through the same
// interceptor chain as a direct gRPC call, to one generic handler (the
// forwarder). It also serves health, readiness, reflection and graceful
// shutdown.
package server

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/shopgateway/shop/gateway/internal/contract"
)

// Server is the gateway's gRPC and REST front end.
type Server struct {
	cfg      Config
	grpc     *grpc.Server
	health   *health.Server
	http     http.Handler
	admin    http.Handler
	draining atomic.Bool
}

// New builds a Server. It returns configuration errors instead of panicking.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	var chain grpc.UnaryServerInterceptor
	descs, methods, err := serviceDescs(cfg.Services, cfg.Handler, cfg.Streams, &chain)
	if err != nil {
		return nil, err
	}
	al := &accessLog{log: cfg.Logger, observe: cfg.Observe}
	traced := cfg.Tracing != nil
	chain = chainUnary(append([]grpc.UnaryServerInterceptor{
		recoveryInterceptor(cfg.Logger),
		accessInterceptor(al, traced),
		singleMetadataInterceptor(cfg.SingleMetadata),
		contract.Interceptor(),
	}, cfg.Interceptors...)...)

	s := &Server{cfg: cfg, health: health.NewServer()}
	s.grpc = newGRPCServer(&cfg, chain)
	for _, d := range descs {
		s.grpc.RegisterService(d, struct{}{})
		s.health.SetServingStatus(d.ServiceName, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	routes, err := restRoutes(cfg.Services)
	if err != nil {
		return nil, err
	}
	var conn grpc.ClientConnInterface = &inprocChannel{methods: methods, handler: cfg.Handler, streams: cfg.Streams, interceptor: chain}
	if cfg.Streams == nil {
		conn.(*inprocChannel).streams = noStreams
	}
	mux, err := newMux(context.Background(), conn, cfg.Register, routes, cfg.StreamEvent, cfg.ResponseHeaders)
	if err != nil {
		return nil, err
	}
	api := httpMiddleware(streamEdge(mux, routes), al, cfg.MaxBodyBytes, literalRoutes(routes), traced, cfg.TrustedProxies, cfg.Cacheable)
	if traced {
		api = cfg.Tracing.HTTPHandler(api)
	}
	api = queryToken(api, routes)
	s.http = s.publicHandler(api, routes)
	s.http = secureHeaders(s.http)
	s.admin = secureHeaders(http.HandlerFunc(s.serveAdmin))
	return s, nil
}

// newGRPCServer is the gRPC server of cfg, every call through chain.
func newGRPCServer(cfg *Config, chain grpc.UnaryServerInterceptor) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(chain),
		grpc.ForceServerCodecV2(newStrictCodec()),
		grpc.NumStreamWorkers(streamWorkers()),
		grpc.MaxRecvMsgSize(int(cfg.MaxBodyBytes)),
		grpc.MaxHeaderListSize(uint32(cfg.MaxHeaderBytes)),
		grpc.MaxConcurrentStreams(cfg.GRPCMaxStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepaliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout}),
	}
	if cfg.Tracing != nil {
		opts = append(opts, grpc.StatsHandler(cfg.Tracing.GRPCServerHandler()))
	}
	return grpc.NewServer(opts...)
}

// publicHandler serves the REST port: /healthz and a terse /readyz, the
// API docs when configured, else the API; behind CORS when configured.
// Health paths are matched by hand rather than with http.ServeMux, which
// would also clean paths and answer redirects on the API's behalf.
func (s *Server) publicHandler(api http.Handler, routes []restRoute) http.Handler {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			switch r.URL.Path {
			case "/healthz":
				s.healthz(w, r)
				return
			case "/readyz":
				s.readyz(w, r, false)
				return
			}
		}
		if s.cfg.APIDocs != nil && s.cfg.APIDocs.Match(r.URL.Path) {
			s.cfg.APIDocs.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	if len(s.cfg.CORSOrigins) > 0 {
		h = newCORS(s.cfg.CORSOrigins, routes).Handler(h)
	}
	return h
}

// HTTPHandler returns the public REST handler: the API, /healthz, a terse
// /readyz, and the API docs when configured.
func (s *Server) HTTPHandler() http.Handler { return s.http }

// AdminHandler returns the admin listener's handler: /healthz, /readyz
// with every check's details, and /metrics when configured.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// GRPCServer returns the gRPC server, for serving on a listener of one's own.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }
