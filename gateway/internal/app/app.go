// Package app wires the gateway together: upstream pools, the forwarder, the
// event emitter and outbox relay, and the gRPC and REST server. It is the
// only place that knows every part.
package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/apidocs"
	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/drift"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/live"
	"github.com/shopgateway/shop/gateway/internal/metrics"
	"github.com/shopgateway/shop/gateway/internal/ratelimit"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// Defaults of Config that are the gateway's own; the others are the
// defaults of the part configured (server, upstream, forward).
const (
	// DefaultServiceA is the base URL of service A's one instance.
	DefaultServiceA = "http://127.0.0.1:8002"
	// DefaultServiceB is the base URL of service B's one instance.
	DefaultServiceB = "http://127.0.0.1:8001"
)

// Config is the whole configuration of the gateway. main fills it from flags
// and environment variables; every field documents its default.
type Config struct {
	// HTTPAddr is the REST listen address. Default server.DefaultHTTPAddr
	// (":8080").
	HTTPAddr string
	// GRPCAddr is the gRPC listen address. Default server.DefaultGRPCAddr
	// (":9090").
	GRPCAddr string
	// AdminAddr is the admin listener's address (/metrics, /readyz with
	// details). Empty: none. main defaults it to server.DefaultAdminAddr
	// (loopback).
	AdminAddr string
	// ServiceA lists the base URLs of service A's instances.
	// Default DefaultServiceA.
	ServiceA []string
	// ServiceB lists the base URLs of service B's instances.
	// Default DefaultServiceB.
	ServiceB []string
	// UpstreamTimeout bounds an upstream call when the caller set no
	// deadline. Default upstream.DefaultTimeout (10s).
	UpstreamTimeout time.Duration
	// FallbackFraction is the share of a cart read's remaining deadline
	// given to service B before service A's fallback cart answers instead.
	// Default 0.5 (forward.DefaultFallbackFraction).
	FallbackFraction float64
	// FallbackMax bounds service B's budget on a cart read. Default 1s
	// (forward.DefaultFallbackMax).
	FallbackMax time.Duration
	// ShutdownTimeout bounds the drain on SIGTERM. Default
	// server.DefaultShutdownTimeout (15s).
	ShutdownTimeout time.Duration
	// RESTChannel replaces the in-process channel from REST to the
	// services; see server.Config.RESTChannel. Default nil; set only by
	// benchmarks.
	RESTChannel server.RESTChannelFunc
	// Tracing turns OpenTelemetry tracing on; see telemetry.Config.
	// Default off.
	Tracing telemetry.Config
	// NoAPIDocs turns off GET /openapi.json and the explorer at /docs/.
	// Default false: both are served on the REST port.
	NoAPIDocs bool
	// Events configures the Kafka events; see EventsConfig.
	Events EventsConfig
	// Auth configures authentication; see AuthConfig.
	Auth AuthConfig
	// Live bounds the Watch streams (live updates read from the event
	// topics): see LiveConfig. They need Events' brokers.
	Live LiveConfig
	// ServiceSigningKey is the private JWK (EdDSA or ES256) the gateway
	// signs the identity assertion of every service call with. Required:
	// the services refuse calls without one.
	ServiceSigningKey string
	// ServiceIssuer is the gateway's name in those assertions. Default
	// svcid.DefaultIssuer ("shop-gateway").
	ServiceIssuer string
	// RateLimit is the requests per second allowed per client (the token's
	// subject, else the client address). Default 0: off.
	RateLimit float64
	// RateBurst is the requests a client may send at once. Default: the
	// rate rounded up.
	RateBurst int
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	// Default: none.
	TrustedProxies []netip.Prefix
	// Limits bound request sizes, timeouts and connections, and configure
	// CORS; see server.Limits for each default.
	Limits server.Limits
}

// AuthConfig configures authentication. Either JWKS is set or Disabled is
// true: the gateway does not start open by accident.
type AuthConfig struct {
	// Disabled turns authentication and authorization off (development
	// only); the gateway logs a warning at start.
	Disabled bool
	// JWKS is the signing keys' JWKS: a file path or an http(s) URL.
	JWKS string
	// Issuer is the required iss claim; empty accepts any.
	Issuer string
	// Audience lists the accepted aud values; empty accepts any.
	Audience []string
	// Leeway is the clock skew allowed on exp and nbf. Default 30s.
	Leeway time.Duration
	// RefreshInterval is how often a JWKS URL is fetched again. Default 5m.
	RefreshInterval time.Duration
}

// Validate reports every configuration problem at once.
func (c *AuthConfig) Validate() error {
	switch {
	case c.Disabled && c.JWKS != "":
		return errors.New("auth: -auth-disabled and -auth-jwks both given; give one")
	case !c.Disabled && c.JWKS == "":
		return errors.New("auth: no signing keys: set -auth-jwks (env GATEWAY_AUTH_JWKS) to a JWKS file or URL, " +
			"with -auth-issuer and -auth-audience; or, for local development only, run with -auth-disabled (env GATEWAY_AUTH_DISABLED=true)")
	}
	return nil
}

func (c *Config) setDefaults() {
	c.HTTPAddr = cmp.Or(c.HTTPAddr, server.DefaultHTTPAddr)
	c.GRPCAddr = cmp.Or(c.GRPCAddr, server.DefaultGRPCAddr)
	if len(c.ServiceA) == 0 {
		c.ServiceA = []string{DefaultServiceA}
	}
	if len(c.ServiceB) == 0 {
		c.ServiceB = []string{DefaultServiceB}
	}
	c.UpstreamTimeout = cmp.Or(c.UpstreamTimeout, upstream.DefaultTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, server.DefaultShutdownTimeout)
	c.Events.setDefaults()
	if c.Events.SchemaBase == "" {
		c.Events.SchemaBase = defaultSchemaBase(c.HTTPAddr)
	}
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.UpstreamTimeout < 0 {
		errs = append(errs, errors.New("upstream timeout must not be negative"))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("shutdown timeout must not be negative"))
	}
	if err := c.Events.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ServiceSigningKey == "" {
		errs = append(errs, errors.New("no service signing key: set -service-signing-key (env GATEWAY_SERVICE_SIGNING_KEY) "+
			"to the private JWK whose public half the services trust (make run creates one in .run/)"))
	}
	return errors.Join(errs...)
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Services are the proto services the gateway serves.
func Services() []protoreflect.ServiceDescriptor {
	return []protoreflect.ServiceDescriptor{
		stockv1.File_shop_stock_v1_stock_proto.Services().ByName("StockService"),
		cartv1.File_shop_cart_v1_cart_proto.Services().ByName("CartService"),
		orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
	}
}

// Registers adapts the generated REST registration of each service.
func Registers() []server.RegisterFunc {
	return []server.RegisterFunc{
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return stockv1.RegisterStockServiceHandlerClient(ctx, mux, stockv1.NewStockServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return cartv1.RegisterCartServiceHandlerClient(ctx, mux, cartv1.NewCartServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return orderv1.RegisterOrderServiceHandlerClient(ctx, mux, orderv1.NewOrderServiceClient(cc))
		},
	}
}

// Gateway is a wired gateway, ready to serve.
type Gateway struct {
	Server  *server.Server
	closers []func()
}

// New wires a gateway from cfg.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Gateway, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	g := &Gateway{}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	tr, err := telemetry.New(ctx, cfg.Tracing)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if tr.Enabled() {
		g.closers = append(g.closers, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tr.Shutdown(sctx); err != nil {
				log.Warn("tracing: flushing spans", slog.Any("error", err))
			}
		})
		log.Info("tracing on: spans exported over OTLP")
	}
	var hook upstream.Hook
	var serverTracing server.Tracing
	if tr.Enabled() {
		serverTracing = tr
		// One client span per upstream attempt, its context sent as the
		// attempt's traceparent.
		hook = func(ctx context.Context, a *upstream.Attempt) (context.Context, func(*upstream.Attempt)) {
			ctx, end := tr.ClientSpan(ctx, a.Method, a.Instance+a.Path, a.Header)
			return ctx, func(a *upstream.Attempt) { end(a.Status, a.Err) }
		}
	}
	pools := map[string]*upstream.Pool{}
	doers := map[string]forward.Doer{}
	for name, urls := range map[string][]string{forward.ServiceA: cfg.ServiceA, forward.ServiceB: cfg.ServiceB} {
		p, err := upstream.NewPool(name, urls, upstream.Options{Timeout: cfg.UpstreamTimeout, Hook: hook, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		g.closers = append(g.closers, p.Close)
		pools[name] = p
		doers[name] = p
	}
	signer, err := svcid.Load(cfg.ServiceSigningKey, cfg.ServiceIssuer, 0)
	if err != nil {
		return nil, err
	}
	fwd, err := forward.New(Services(), forward.DefaultTable, doers, forward.Options{
		FallbackFraction: cfg.FallbackFraction, FallbackMax: cfg.FallbackMax, Timeout: cfg.UpstreamTimeout, Asserter: signer,
	})
	if err != nil {
		return nil, err
	}
	var ready []server.Check
	for _, name := range []string{forward.ServiceA, forward.ServiceB} {
		p := pools[name]
		ready = append(ready, server.Check{Name: name, Shared: true, Func: func(ctx context.Context) (any, error) {
			return nil, p.Ready(ctx)
		}})
	}
	contract, err := g.watchContract(pools, log)
	if err != nil {
		return nil, err
	}
	ready = append(ready, contract)
	ev, err := newEvents(ctx, cfg.Events, fwd.Lookup, cfg.UpstreamTimeout, tr, log)
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	authz, err := g.newAuthorizer(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// Authorization runs before the events: a denied call reaches no
	// service and emits nothing, and an idempotent replay is only served to
	// a caller who may make the call.
	interceptors := []grpc.UnaryServerInterceptor{authz.Interceptor()}
	if ev != nil {
		g.closers = append(g.closers, ev.Close)
		interceptors = append(interceptors, ev.Interceptor())
		ready = append(ready, ev.Checks()...)
		ev.Gauges(m)
	}
	var docs server.PathHandler
	if !cfg.NoAPIDocs {
		docs = apidocs.New()
	} else if ev != nil {
		log.Warn("API docs off: events' ce_dataschema points at " + cfg.Events.SchemaBase + apidocs.AsyncAPIPath +
			", which this gateway does not serve; set -event-schema-base to a gateway that does")
	}
	streams, drain, err := g.newLive(cfg, m, log)
	if err != nil {
		return nil, err
	}
	srv, err := server.New(server.Config{
		Streams:         streams,
		StreamEvent:     live.PayloadJSON,
		OnDrain:         drain,
		HTTPAddr:        cfg.HTTPAddr,
		GRPCAddr:        cfg.GRPCAddr,
		AdminAddr:       cfg.AdminAddr,
		Services:        Services(),
		Register:        Registers(),
		Handler:         fwd.Handle,
		Interceptors:    interceptors,
		Ready:           ready,
		Observe:         m.Observe,
		Metrics:         m.Handler(),
		Cacheable:       cacheable(),
		APIDocs:         docs,
		Tracing:         serverTracing,
		Logger:          log,
		ShutdownTimeout: cfg.ShutdownTimeout,
		RESTChannel:     cfg.RESTChannel,
		TrustedProxies:  cfg.TrustedProxies,
		Limits:          cfg.Limits,
	})
	if err != nil {
		return nil, err
	}
	g.Server = srv
	ok = true
	return g, nil
}

// LiveConfig bounds the Watch streams. Zero fields take live's defaults.
type LiveConfig struct {
	// MaxStreams caps this instance's open streams. Default
	// live.DefaultMaxStreams (10000).
	MaxStreams int
	// MaxStreamsPerUser caps one caller's open streams (the token's user,
	// else the client address). Default live.DefaultMaxStreamsPerUser (8).
	MaxStreamsPerUser int
	// Buffer is how many events a stream may fall behind before it is
	// ended with RESOURCE_EXHAUSTED. Default live.DefaultBuffer (256).
	Buffer int
	// MaxAge ends a stream after this long (the client resumes). Default
	// live.DefaultMaxAge (1h).
	MaxAge time.Duration
	// Heartbeat is how long a stream goes without a message before it is
	// sent its position. Default live.DefaultHeartbeat (15s).
	Heartbeat time.Duration
}

// newLive starts the hub that serves the Watch streams from the event
// topics. Without Kafka brokers (events off) the streams answer
// UNAVAILABLE.
func (g *Gateway) newLive(cfg Config, m *metrics.Metrics, log *slog.Logger) (server.StreamHandler, func(), error) {
	if len(cfg.Events.Brokers) == 0 {
		off := func(context.Context, string, proto.Message, func(proto.Message) error) error {
			return apierr.New(codes.Unavailable, "live updates are off: the gateway has no Kafka brokers")
		}
		return off, nil, nil
	}
	hub, err := live.New(live.Config{
		Brokers:           cfg.Events.Brokers,
		Topics:            cfg.Events.Topics,
		MaxStreams:        cfg.Live.MaxStreams,
		MaxStreamsPerUser: cfg.Live.MaxStreamsPerUser,
		Buffer:            cfg.Live.Buffer,
		MaxAge:            cfg.Live.MaxAge,
		Heartbeat:         cfg.Live.Heartbeat,
		Logger:            log.With(slog.String("component", "live")),
	})
	if err != nil {
		return nil, nil, err
	}
	g.closers = append(g.closers, hub.Close)
	m.GaugeFunc("shop_gateway_live_streams", "Open Watch streams (live updates) on this instance.",
		func() float64 { return float64(hub.Streams()) })
	return hub.Serve, hub.Drain, nil
}

// watchContract starts checking each service instance's own OpenAPI
// document against the proto (package drift) in the background, and
// returns its readiness check. A drifted instance makes the check fail as
// a shared dependency: /readyz says "degraded" but stays 200. The drift is
// the same for every gateway instance, so taking this one out of a load
// balancer cannot help; failing readiness would turn a mismatch of some
// fields of some RPCs into an outage of all of them, fleet-wide, and
// during a rolling deploy of a service. make check-contract is the gate
// that keeps drift from being deployed; this check names it when it was.
func (g *Gateway) watchContract(pools map[string]*upstream.Pool, log *slog.Logger) (server.Check, error) {
	plans, err := forward.Plans(Services(), forward.DefaultTable)
	if err != nil {
		return server.Check{}, err
	}
	services := map[string]drift.Fetcher{}
	for name, p := range pools {
		services[name] = p
	}
	w, err := drift.NewWatcher(drift.WatchConfig{Plans: plans, Services: services, Logger: log.With(slog.String("component", "contract"))})
	if err != nil {
		return server.Check{}, err
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	g.closers = append(g.closers, func() {
		stop()
		<-done
	})
	return server.Check{Name: "contract", Shared: true, Func: w.Ready}, nil
}

// cacheable reports the RPCs whose successful REST answers caches may keep
// (revalidating): the public ones, whose answer is the same for everyone.
func cacheable() func(string) bool {
	public := auth.PublicMethods(Services())
	return func(fullMethod string) bool { return public[fullMethod] }
}

// newAuthorizer builds the token verifier (unless auth is disabled), the
// per-client rate limiter (when a rate is set) and the authorizer.
func (g *Gateway) newAuthorizer(ctx context.Context, cfg Config, log *slog.Logger) (*auth.Authorizer, error) {
	acfg := auth.AuthorizerConfig{
		Services:       Services(),
		TrustedProxies: cfg.TrustedProxies,
		Open:           []string{healthpb.Health_Check_FullMethodName},
		Logger:         log,
	}
	if cfg.Auth.Disabled {
		log.Warn("authentication is DISABLED (-auth-disabled): every caller may call every RPC; never run like this where the gateway is reachable by others")
	} else {
		v, err := auth.NewVerifier(ctx, auth.Config{
			JWKS:            cfg.Auth.JWKS,
			Issuer:          cfg.Auth.Issuer,
			Audience:        cfg.Auth.Audience,
			Leeway:          cfg.Auth.Leeway,
			RefreshInterval: cfg.Auth.RefreshInterval,
		}, log)
		if err != nil {
			return nil, err
		}
		g.closers = append(g.closers, v.Close)
		acfg.Verifier = v
		if cfg.Auth.Issuer == "" || len(cfg.Auth.Audience) == 0 {
			log.Warn("auth: no -auth-issuer or -auth-audience: tokens of any issuer or audience signed by these keys are accepted")
		}
	}
	lim, err := ratelimit.New(ratelimit.Config{Rate: cfg.RateLimit, Burst: cfg.RateBurst})
	if err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	if lim != nil {
		acfg.Limiter = lim
	}
	return auth.NewAuthorizer(acfg)
}

// Close releases what New acquired, in reverse order.
func (g *Gateway) Close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.closers = nil
}

// Run wires the gateway and serves until ctx is done.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	g, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()
	return g.Server.Serve(ctx)
}
