// Package server serves the shop API over gRPC and over REST. REST is
// transcoded by grpc-gateway and dispatched in process, through the same
// interceptor chain as a direct gRPC call, to one generic handler (the
// forwarder). It also serves health, readiness, reflection and graceful
// shutdown.
package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/connlimit"
	"github.com/shopgateway/shop/gateway/internal/contract"
)

// Check is one readiness check. It returns details shown on the admin
// listener's /readyz and an error when the gateway should not receive
// traffic because of it.
type Check struct {
	// Name keys the check in the admin /readyz body.
	Name string
	// Func runs the check; it must return within the context's deadline.
	Func func(ctx context.Context) (any, error)
	// Shared marks a dependency every gateway instance shares (an upstream
	// service): its failure is shown (ok false, status "degraded") but
	// leaves /readyz 200, since taking this instance out of a load
	// balancer cannot help and it can still serve (the cart fallback, the
	// other service's routes). A failing check that is not shared (a full
	// outbox) makes /readyz 503.
	Shared bool
}

// Defaults of Config, applied to its zero fields.
const (
	// DefaultHTTPAddr is the REST listen address.
	DefaultHTTPAddr = ":8080"
	// DefaultGRPCAddr is the gRPC listen address.
	DefaultGRPCAddr = ":9090"
	// DefaultShutdownTimeout bounds the drain on shutdown.
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultMaxBodyBytes bounds a REST request body (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReadyTimeout bounds the /readyz checks.
	DefaultReadyTimeout = 2 * time.Second
	// DefaultAdminAddr is the admin listener's address (metrics and
	// readiness details): loopback, so that only the host (or its
	// monitoring agent) reaches it. main's flag default; an empty
	// Config.AdminAddr serves no admin listener.
	DefaultAdminAddr = "127.0.0.1:9464"
)

// Config configures a Server.
type Config struct {
	// HTTPAddr is the REST listen address. Default DefaultHTTPAddr (":8080").
	HTTPAddr string
	// GRPCAddr is the gRPC listen address. Default DefaultGRPCAddr (":9090").
	GRPCAddr string
	// AdminAddr is the admin listener's address: /metrics, /readyz with
	// every dependency's details, /healthz. Empty: no admin listener (the
	// public port never serves them). main defaults it to
	// DefaultAdminAddr.
	AdminAddr string
	// Services are the proto services served.
	Services []protoreflect.ServiceDescriptor
	// Register registers each service's REST routes (the generated
	// Register…HandlerClient functions).
	Register []RegisterFunc
	// Handler serves every unary RPC.
	Handler Handler
	// Streams serves the server-streaming RPCs (the Watch streams);
	// required when a service has one.
	Streams StreamHandler
	// StreamEvent renders a streamed message as a Server-Sent Event: its
	// event name and data. ok false (a message without an event) is sent as
	// a comment. Required with Streams for REST clients asking for
	// text/event-stream.
	StreamEvent func(proto.Message) (event string, data []byte, ok bool)
	// OnDrain runs when shutdown begins, before the servers drain: it must
	// end the open streams, which would otherwise hold the drain.
	OnDrain func()
	// Interceptors run after recovery, access logging, the check of
	// metadata sent twice and the contract check (required fields, rules),
	// outermost first, for gRPC and REST alike.
	Interceptors []grpc.UnaryServerInterceptor
	// Ready are the readiness checks of /readyz: the public port answers
	// only their verdict, the admin listener their details too.
	Ready []Check
	// Logger receives access and server logs. Required.
	Logger *slog.Logger
	// ShutdownTimeout bounds the drain of HTTP and gRPC on shutdown.
	// Default DefaultShutdownTimeout (15s).
	ShutdownTimeout time.Duration
	// Limits bound what a client may send and hold open.
	Limits
	// ReadyTimeout bounds the /readyz checks. Default DefaultReadyTimeout
	// (2s).
	ReadyTimeout time.Duration
	// Observe, when set, receives every finished request (for metrics).
	Observe ObserveFunc
	// Metrics, when set, is served at GET /metrics on the admin listener
	// (never on the public REST port).
	Metrics http.Handler
	// Cacheable reports whether a successful REST answer of the RPC (full
	// method name) may be kept by caches: it is sent with Cache-Control
	// no-cache (store, but revalidate before reuse). Every other answer,
	// errors included, is no-store. Nil: nothing is cacheable.
	Cacheable func(fullMethod string) bool
	// Tracing, when set, puts every gRPC call and REST request in a server
	// span. Default: no tracing.
	Tracing Tracing
	// APIDocs, when set, serves the paths it matches on the REST port (the
	// OpenAPI document and the explorer) instead of the API.
	APIDocs PathHandler
	// RESTChannel, when set, makes the channel through which the REST mux
	// reaches the services, from the services' descriptions and the unary
	// interceptor chain the gRPC server runs. Default nil: the in-process
	// channel, the fastest. Benchmarks set it to measure other designs.
	RESTChannel RESTChannelFunc
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (for rate limiting). Empty trusts none.
	TrustedProxies []netip.Prefix
}

// RESTChannelFunc makes a channel for the REST mux. descs are served with
// struct{}{} as their implementation (the handlers ignore it) and chain must
// run around every call, as on the gRPC server.
type RESTChannelFunc func(descs []*grpc.ServiceDesc, chain grpc.UnaryServerInterceptor) grpc.ClientConnInterface

// Tracing instruments the server's two edges.
type Tracing interface {
	// GRPCServerHandler is the stats handler of the gRPC server.
	GRPCServerHandler() stats.Handler
	// HTTPHandler wraps the REST API.
	HTTPHandler(http.Handler) http.Handler
}

// PathHandler is an http.Handler for the paths it matches.
type PathHandler interface {
	http.Handler
	Match(path string) bool
}

// Limits bound what clients may send and how long and how many connections
// they may hold. The zero value is the defaults.
type Limits struct {
	// MaxBodyBytes bounds a REST request body (413 above it) and a gRPC
	// request message (RESOURCE_EXHAUSTED). Default 1 MiB.
	MaxBodyBytes int64
	// MaxHeaderBytes bounds a REST request's header (431 above it) and a
	// gRPC request's header list. Default 64 KiB.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the reading of a REST request's header.
	// Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole REST request, body
	// included: a slow body is cut off. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a REST request from the end of its header to the
	// end of the response; it must exceed the longest call deadline.
	// Default 60s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive REST connection, or a gRPC connection
	// without calls, idle this long. Default 120s.
	IdleTimeout time.Duration
	// MaxConns caps the open connections of each port; a connection over
	// it gets a 503 (REST) or is closed (gRPC). Default: three quarters of
	// the file-descriptor limit, at most 10000.
	MaxConns int
	// MaxConnsPerIP caps one client address's (an IPv6 client's /64) open
	// connections on each port (429 on REST). Default MaxConns/16, at most
	// 256 (connlimit.DefaultMaxPerIP): a handful of addresses cannot fill
	// MaxConns. Config.TrustedProxies speak for many clients and are held
	// to MaxConns only.
	MaxConnsPerIP int
	// FirstByteTimeout closes a new connection, REST or gRPC, that sends
	// nothing for this long, well before ReadHeaderTimeout: connections
	// opened and left silent hold their slot only briefly. Default 3s
	// (connlimit.DefaultFirstByteTimeout); negative turns it off.
	FirstByteTimeout time.Duration
	// GRPCMaxStreams caps the concurrent calls of one gRPC connection.
	// Default 256.
	GRPCMaxStreams uint32
	// GRPCKeepaliveMinTime is the shortest keepalive ping interval a gRPC
	// client may use; a client pinging more often is disconnected. Default
	// 30s.
	GRPCKeepaliveMinTime time.Duration
	// CORSOrigins are the origins browsers may call the REST API from
	// ("*" for any). Empty turns CORS off: no CORS headers are sent.
	CORSOrigins []string
}

// Defaults of Limits, one place for flags, config and docs.
const (
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultReadTimeout          = 30 * time.Second
	DefaultWriteTimeout         = 60 * time.Second
	DefaultIdleTimeout          = 120 * time.Second
	DefaultGRPCMaxStreams       = 256
	DefaultGRPCKeepaliveMinTime = 30 * time.Second
)

func (c *Config) setDefaults() {
	c.HTTPAddr = cmp.Or(c.HTTPAddr, DefaultHTTPAddr)
	c.GRPCAddr = cmp.Or(c.GRPCAddr, DefaultGRPCAddr)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	c.ReadTimeout = cmp.Or(c.ReadTimeout, DefaultReadTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.GRPCMaxStreams = cmp.Or(c.GRPCMaxStreams, DefaultGRPCMaxStreams)
	c.GRPCKeepaliveMinTime = cmp.Or(c.GRPCKeepaliveMinTime, DefaultGRPCKeepaliveMinTime)
	c.ReadyTimeout = cmp.Or(c.ReadyTimeout, DefaultReadyTimeout)
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("no services"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("no handler"))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("no logger"))
	}
	if c.ShutdownTimeout < 0 || c.MaxBodyBytes < 0 || c.ReadyTimeout < 0 || c.MaxHeaderBytes < 0 ||
		c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.GRPCKeepaliveMinTime < 0 {
		errs = append(errs, errors.New("negative duration or size"))
	}
	if c.MaxBodyBytes > math.MaxInt32 {
		errs = append(errs, errors.New("max body bytes must fit a gRPC message size (2 GiB)"))
	}
	lim := connlimit.Config{Max: c.MaxConns, MaxPerIP: c.MaxConnsPerIP}
	if err := lim.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, o := range c.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			errs = append(errs, fmt.Errorf("CORS origin %q: want http(s)://host[:port] or *", o))
		}
	}
	return errors.Join(errs...)
}

// streamWorkers is how many long-lived goroutines serve gRPC calls. Without
// them grpc-go starts a goroutine per call, whose stack then grows (copied
// twice or more) through the interceptors, the forwarder, the upstream
// client and the access log: about a seventh of a call's CPU in profiles.
// A call that finds every worker busy still gets a goroutine of its own.
func streamWorkers() uint32 { return uint32(16 * runtime.GOMAXPROCS(0)) }

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
		singleMetadataInterceptor(),
		contract.Interceptor(),
	}, cfg.Interceptors...)...)

	s := &Server{cfg: cfg, health: health.NewServer()}
	grpcOpts := []grpc.ServerOption{
		grpc.UnaryInterceptor(chain),
		grpc.ForceServerCodecV2(newStrictCodec()),
		grpc.NumStreamWorkers(streamWorkers()),
		grpc.MaxRecvMsgSize(int(cfg.MaxBodyBytes)),
		grpc.MaxHeaderListSize(uint32(cfg.MaxHeaderBytes)),
		grpc.MaxConcurrentStreams(cfg.GRPCMaxStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.GRPCKeepaliveMinTime}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: cfg.IdleTimeout}),
	}
	if traced {
		grpcOpts = append(grpcOpts, grpc.StatsHandler(cfg.Tracing.GRPCServerHandler()))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
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
	if cfg.RESTChannel != nil {
		conn = cfg.RESTChannel(descs, chain)
	}
	mux, err := newMux(context.Background(), conn, cfg.Register, routes, cfg.StreamEvent)
	if err != nil {
		return nil, err
	}
	// Health paths are matched by hand rather than with http.ServeMux, which
	// would also clean paths and answer redirects on the API's behalf.
	api := httpMiddleware(streamEdge(mux, routes), al, cfg.MaxBodyBytes, literalRoutes(routes), traced, cfg.TrustedProxies, cfg.Cacheable)
	if traced {
		api = cfg.Tracing.HTTPHandler(api)
	}
	api = queryToken(api, routes)
	s.http = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		if cfg.APIDocs != nil && cfg.APIDocs.Match(r.URL.Path) {
			cfg.APIDocs.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
	if len(cfg.CORSOrigins) > 0 {
		s.http = newCORS(cfg.CORSOrigins, routes).Handler(s.http)
	}
	s.http = secureHeaders(s.http)
	s.admin = secureHeaders(http.HandlerFunc(s.serveAdmin))
	return s, nil
}

// HTTPHandler returns the public REST handler: the API, /healthz, a terse
// /readyz, and the API docs when configured.
func (s *Server) HTTPHandler() http.Handler { return s.http }

// AdminHandler returns the admin listener's handler: /healthz, /readyz
// with every check's details, and /metrics when configured.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// GRPCServer returns the gRPC server, for serving on a listener of one's own.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, apierr.Errorf(codes.Unimplemented, "method %s is not allowed", r.Method))
		return
	}
	switch r.URL.Path {
	case "/healthz":
		s.healthz(w, r)
	case "/readyz":
		s.readyz(w, r, true)
	case "/metrics":
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ServeHTTP(w, r)
			return
		}
		fallthrough
	default:
		writeError(w, http.StatusNotFound, apierr.Errorf(codes.NotFound, "no route for %q", r.URL.Path))
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz answers whether this instance should receive traffic: 200 "ready"
// or "degraded" (a shared dependency fails), 503 "not ready" (a check of
// its own fails) or "draining". With details (the admin listener) the body
// also has every check's result; the public port says only the one word,
// since error texts name hosts, ports and internals.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, details bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	type result struct {
		name   string
		shared bool
		detail any
		err    error
	}
	results := make([]result, len(s.cfg.Ready))
	var wg sync.WaitGroup
	for i, c := range s.cfg.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Func(ctx)
			results[i] = result{c.Name, c.Shared, d, err}
		}()
	}
	wg.Wait()
	body := map[string]any{}
	code, overall := http.StatusOK, "ready"
	if s.draining.Load() {
		code, overall = http.StatusServiceUnavailable, "draining"
	}
	for _, res := range results {
		entry := map[string]any{"ok": res.err == nil}
		if res.detail != nil {
			entry["detail"] = res.detail
		}
		if res.err != nil {
			entry["error"] = res.err.Error()
			switch {
			case !res.shared:
				code, overall = http.StatusServiceUnavailable, "not ready"
			case code == http.StatusOK:
				overall = "degraded"
			}
		}
		if details {
			body[res.name] = entry
		}
	}
	body["status"] = overall
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// capListeners puts the connection caps on both listeners. A REST
// connection over a cap is answered with a google.rpc.Status: 429 over the
// per-address cap, 503 over the overall one.
func (s *Server) capListeners(hl, gl net.Listener) (net.Listener, net.Listener, error) {
	onRefuse := func(port string) func(string, bool) {
		return func(remote string, perIP bool) {
			s.cfg.Logger.Warn("connection refused over the cap", slog.String("port", port), slog.String("remote", remote), slog.Bool("per_ip", perIP))
		}
	}
	caps := func(port string, refuse func(bool) []byte) connlimit.Config {
		return connlimit.Config{Max: s.cfg.MaxConns, MaxPerIP: s.cfg.MaxConnsPerIP, FirstByteTimeout: s.cfg.FirstByteTimeout,
			Shared: s.cfg.TrustedProxies, Refuse: refuse, OnRefuse: onRefuse(port)}
	}
	h, err := connlimit.Wrap(hl, caps("http", refusal))
	if err != nil {
		return nil, nil, err
	}
	g, err := connlimit.Wrap(gl, caps("grpc", nil))
	if err != nil {
		return nil, nil, err
	}
	return h, g, nil
}

// refusal is the HTTP answer to a connection over a cap.
func refusal(perIP bool) []byte {
	status, text, code, msg := 503, "Service Unavailable", 14, "the gateway is at its connection limit; retry later"
	if perIP {
		status, text, code, msg = 429, "Too Many Requests", 8, "too many connections from this address; close some and retry"
	}
	body := fmt.Sprintf(`{"code":%d,"message":%q,"details":[]}`, code, msg)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
		status, text, len(body), body)
}

// Serve listens on the configured addresses (the admin one too, when set)
// and serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	var ls []net.Listener
	for _, addr := range []string{s.cfg.HTTPAddr, s.cfg.GRPCAddr, s.cfg.AdminAddr} {
		if addr == "" { // only the admin address may be empty: no admin listener
			ls = append(ls, nil)
			continue
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, o := range ls {
				if o != nil {
					o.Close()
				}
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return s.serve(ctx, ls[0], ls[1], ls[2])
}

// ServeListeners serves REST on hl and gRPC on gl until ctx is done, then
// drains both within ShutdownTimeout: readiness turns 503 and gRPC health
// NOT_SERVING first, in-flight requests finish, new ones are refused. It
// serves no admin listener.
func (s *Server) ServeListeners(ctx context.Context, hl, gl net.Listener) error {
	return s.serve(ctx, hl, gl, nil)
}

// ServeAdminListeners is ServeListeners with the admin handler served on
// al as well, until the drain is over.
func (s *Server) ServeAdminListeners(ctx context.Context, hl, gl, al net.Listener) error {
	return s.serve(ctx, hl, gl, al)
}

// httpServer serves h with the configured timeouts and header bound.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

func (s *Server) serve(ctx context.Context, hl, gl, al net.Listener) error {
	hl, gl, err := s.capListeners(hl, gl)
	if err != nil {
		return err
	}
	hs := s.httpServer(s.http)
	errc := make(chan error, 3)
	go func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	go func() {
		if err := s.grpc.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	var as *http.Server
	attrs := []any{slog.String("http_addr", hl.Addr().String()), slog.String("grpc_addr", gl.Addr().String())}
	if al != nil {
		// The admin listener answers the operator, not the public: the
		// same timeouts, no connection caps of its own (it is bound to a
		// private address).
		as = s.httpServer(s.admin)
		go func() {
			if err := as.Serve(al); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		}()
		attrs = append(attrs, slog.String("admin_addr", al.Addr().String()))
	}
	s.cfg.Logger.Info("serving", attrs...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.draining.Store(true)
	s.health.Shutdown()
	if s.cfg.OnDrain != nil {
		s.cfg.OnDrain()
	}
	s.cfg.Logger.Info("shutting down", slog.Duration("timeout", s.cfg.ShutdownTimeout))

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		s.cfg.Logger.Warn("http drain timed out", slog.Any("error", err))
	}
	select {
	case <-done:
	case <-sctx.Done():
		s.grpc.Stop()
		s.cfg.Logger.Warn("grpc drain timed out")
	}
	// The admin listener goes last: it reports "draining" until the end.
	if as != nil {
		_ = as.Close()
	}
	return serveErr
}
