// Package app wires the gateway together: upstream pools, the forwarder, the
// event emitter and outbox relay, and the gRPC and REST server. It is the
// only place that knows every part.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	orderv1 "github.com/shopgateway/shop/gen/shop/order/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/apidocs"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/drift"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/live"
	"github.com/shopgateway/shop/gateway/internal/metrics"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

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
	tr, hook, err := g.newTracing(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	fwd, pools, err := g.newForwarder(cfg, hook, log)
	if err != nil {
		return nil, err
	}
	ready, err := g.upstreamChecks(pools, log)
	if err != nil {
		return nil, err
	}
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
	docs := apiDocs(cfg, ev != nil, log)
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
		ResponseHeaders: ResponseHeaders(),
		SingleMetadata:  auth.SingleMetadata,
		Register:        Registers(),
		Handler:         fwd.Handle,
		Interceptors:    interceptors,
		Ready:           ready,
		Observe:         m.Observe,
		Metrics:         m.Handler(),
		Cacheable:       cacheable(),
		APIDocs:         docs,
		Tracing:         serverTracing(tr),
		Logger:          log,
		ShutdownTimeout: cfg.ShutdownTimeout,
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

// ResponseHeaders are the features' response metadata with the HTTP
// header each is answered as over REST.
func ResponseHeaders() map[string]string {
	h := maps.Clone(auth.ResponseHeaders)
	maps.Copy(h, forward.ResponseHeaders)
	return h
}

// newTracing starts the OpenTelemetry exporter when configured (flushed at
// Close) and returns the hook that makes a client span of each upstream
// attempt, its context sent as the attempt's traceparent; nil when off.
func (g *Gateway) newTracing(ctx context.Context, cfg Config, log *slog.Logger) (*telemetry.Tracing, upstream.Hook, error) {
	tr, err := telemetry.New(ctx, cfg.Tracing)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if !tr.Enabled() {
		return tr, nil, nil
	}
	g.closers = append(g.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing: flushing spans", slog.Any("error", err))
		}
	})
	log.Info("tracing on: spans exported over OTLP")
	hook := func(ctx context.Context, a *upstream.Attempt) (context.Context, func(*upstream.Attempt)) {
		ctx, end := tr.ClientSpan(ctx, a.Method, a.Instance+a.Path, a.Header)
		return ctx, func(a *upstream.Attempt) { end(a.Status, a.Err) }
	}
	return tr, hook, nil
}

// serverTracing is tr for the server, nil (no instrumentation) when off.
func serverTracing(tr *telemetry.Tracing) server.Tracing {
	if !tr.Enabled() {
		return nil
	}
	return tr
}

// newForwarder makes the upstream pools (closed at Close) and the
// forwarder that signs each call's identity assertion.
func (g *Gateway) newForwarder(cfg Config, hook upstream.Hook, log *slog.Logger) (*forward.Forwarder, map[string]*upstream.Pool, error) {
	pools := map[string]*upstream.Pool{}
	doers := map[string]forward.Doer{}
	for name, urls := range map[string][]string{forward.ServiceA: cfg.ServiceA, forward.ServiceB: cfg.ServiceB} {
		p, err := upstream.NewPool(name, urls, upstream.Options{Timeout: cfg.UpstreamTimeout, Hook: hook, Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		g.closers = append(g.closers, p.Close)
		pools[name] = p
		doers[name] = p
	}
	signer, err := svcid.Load(cfg.ServiceSigningKey, cfg.ServiceIssuer, 0)
	if err != nil {
		return nil, nil, err
	}
	fwd, err := forward.New(Services(), forward.DefaultTable, doers, forward.Options{
		FallbackFraction: cfg.FallbackFraction, FallbackMax: cfg.FallbackMax, Timeout: cfg.UpstreamTimeout, Asserter: signer,
	})
	return fwd, pools, err
}

// apiDocs is the docs handler unless turned off; off while events are on,
// the events' ce_dataschema points at a document nobody serves, which is
// worth a warning.
func apiDocs(cfg Config, events bool, log *slog.Logger) server.PathHandler {
	if !cfg.NoAPIDocs {
		return apidocs.New()
	}
	if events {
		log.Warn("API docs off: events' ce_dataschema points at " + cfg.Events.SchemaBase + apidocs.AsyncAPIPath +
			", which this gateway does not serve; set -event-schema-base to a gateway that does")
	}
	return nil
}

// upstreamChecks are the readiness checks of the services: each pool has
// an instance that answers, and their contract has not drifted.
func (g *Gateway) upstreamChecks(pools map[string]*upstream.Pool, log *slog.Logger) ([]server.Check, error) {
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
	return append(ready, contract), nil
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
