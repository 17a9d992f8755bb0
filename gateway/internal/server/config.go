package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shopgateway/shop/gateway/internal/connlimit"
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
	// ResponseHeaders are the features' response metadata keys with the
	// HTTP header each is answered as over REST (auth.ResponseHeaders,
	// forward.ResponseHeaders); other metadata is not exposed.
	ResponseHeaders map[string]string
	// SingleMetadata are the features' metadata keys a call must not
	// repeat (auth.SingleMetadata), refused with INVALID_ARGUMENT.
	SingleMetadata []string
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
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (for rate limiting). Empty trusts none.
	TrustedProxies []netip.Prefix
}

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
