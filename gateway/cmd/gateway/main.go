// Command gateway serves the shop API over REST and gRPC (by default on
// :8080 and :9090, server.DefaultHTTPAddr and server.DefaultGRPCAddr) and
// forwards every call to the Python service that owns it. It is the only
// place that reads flags and environment variables; every flag has an
// environment fallback, listed in the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/connlimit"
	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/live"
	"github.com/shopgateway/shop/gateway/internal/logbuf"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/ratelimit"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

func main() {
	if err := run(flag.NewFlagSet("gateway", flag.ContinueOnError), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// env returns the environment value of key, or def when unset or empty.
func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// envSet returns the environment value of key when it is set, even empty,
// or def when unset: for settings where empty means "off".
func envSet(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// envErrors collects the environment values that do not parse; run
// refuses to start with any (a typo must not leave a default in force).
var envErrors []error

// envParsed returns parse(value of key) when key is set and not empty, else
// def; a value that does not parse is recorded in envErrors.
func envParsed[T any](key string, def T, parse func(string) (T, error)) T {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		envErrors = append(envErrors, fmt.Errorf("%s=%q: %w", key, v, err))
		return def
	}
	return x
}

func envDuration(key string, def time.Duration) time.Duration {
	return envParsed(key, def, time.ParseDuration)
}

func envFloat(key string, def float64) float64 {
	return envParsed(key, def, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) })
}

func envInt(key string, def int64) int64 {
	return envParsed(key, def, func(v string) (int64, error) { return strconv.ParseInt(v, 10, 64) })
}

func envBool(key string, def bool) bool {
	return envParsed(key, def, strconv.ParseBool)
}

// defaultGCPercent is the garbage collector's target heap growth between
// collections (GOGC) that the gateway sets unless told otherwise. Go's own
// 100 collects so often under load (the live heap is a few MiB; each
// request allocates a few KiB) that the collector's assists and pauses set
// the gateway's tail latency; 400 cut the p99 of GET through the gateway
// binary to the reverse proxy's on the benchmark rig, for about 25 MiB more
// RSS (docs/benchmarks.md).
const defaultGCPercent = 400

// run defines the gateway's flags on fs, parses args and serves until
// SIGINT or SIGTERM.
func run(fs *flag.FlagSet, args []string) error {
	envErrors = nil
	var (
		httpAddr         = fs.String("http-addr", env("GATEWAY_HTTP_ADDR", server.DefaultHTTPAddr), "REST listen address (env GATEWAY_HTTP_ADDR)")
		grpcAddr         = fs.String("grpc-addr", env("GATEWAY_GRPC_ADDR", server.DefaultGRPCAddr), "gRPC listen address (env GATEWAY_GRPC_ADDR)")
		adminAddr        = fs.String("admin-addr", envSet("GATEWAY_ADMIN_ADDR", server.DefaultAdminAddr), "admin listen address: /metrics and /readyz with dependency details; keep it private (loopback); empty turns it off (env GATEWAY_ADMIN_ADDR, also when set empty)")
		serviceA         = fs.String("service-a", env("SERVICE_A_URL", app.DefaultServiceA), "service A instances, comma-separated base URLs (env SERVICE_A_URL)")
		serviceB         = fs.String("service-b", env("SERVICE_B_URL", app.DefaultServiceB), "service B instances, comma-separated base URLs (env SERVICE_B_URL)")
		upstreamTimeout  = fs.Duration("upstream-timeout", envDuration("GATEWAY_UPSTREAM_TIMEOUT", upstream.DefaultTimeout), "upstream call bound when the caller sets no deadline (env GATEWAY_UPSTREAM_TIMEOUT)")
		fallbackMax      = fs.Duration("cart-fallback-max", envDuration("GATEWAY_CART_FALLBACK_MAX", forward.DefaultFallbackMax), "most time a cart read gives service B before service A's fallback cart answers (env GATEWAY_CART_FALLBACK_MAX)")
		fallbackFraction = fs.Float64("cart-fallback-fraction", envFloat("GATEWAY_CART_FALLBACK_FRACTION", forward.DefaultFallbackFraction), "share of a cart read's remaining deadline given to service B, 0 < f <= 1 (env GATEWAY_CART_FALLBACK_FRACTION)")
		shutdownTimeout  = fs.Duration("shutdown-timeout", envDuration("GATEWAY_SHUTDOWN_TIMEOUT", server.DefaultShutdownTimeout), "drain bound on SIGTERM (env GATEWAY_SHUTDOWN_TIMEOUT)")
		logFormat        = fs.String("log-format", env("GATEWAY_LOG_FORMAT", "auto"), "log format: json, text, or auto (text on a terminal) (env GATEWAY_LOG_FORMAT)")
		apiDocs          = fs.Bool("api-docs", envBool("GATEWAY_API_DOCS", true), "serve the OpenAPI document at /openapi.json, the explorer at /docs/ and the events' AsyncAPI document at /asyncapi.json on the REST port (env GATEWAY_API_DOCS)")
		logLevel         = fs.String("log-level", env("GATEWAY_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env GATEWAY_LOG_LEVEL)")
		gcPercent        = fs.Int64("gc-percent", envInt("GATEWAY_GC_PERCENT", defaultGCPercent), "garbage collector target, as GOGC: heap growth in percent between collections; 0 keeps Go's own setting (GOGC, else 100); GOMEMLIMIT still bounds the heap (env GATEWAY_GC_PERCENT)")
		logFlush         = fs.Duration("log-flush-interval", envDuration("GATEWAY_LOG_FLUSH_INTERVAL", logbuf.DefaultFlushInterval), "longest a log line waits in the buffer; warnings, errors and shutdown write it out at once; 0 writes every line at once (env GATEWAY_LOG_FLUSH_INTERVAL)")

		kafkaBrokers     = fs.String("kafka-brokers", envSet("KAFKA_BROKERS", app.DefaultKafkaBrokers), "Kafka bootstrap brokers, comma-separated; empty turns events off (env KAFKA_BROKERS, also when set empty)")
		kafkaTopics      = fs.String("kafka-topics", env("KAFKA_TOPICS", ""), "logical=actual Kafka topic names, comma-separated, e.g. shop.cart.v1=prod.cart; unmapped topics keep their name (env KAFKA_TOPICS)")
		kafkaPartitions  = fs.Int64("kafka-partitions", envInt("KAFKA_PARTITIONS", app.DefaultKafkaPartitions), "partitions of the event topics created when missing (env KAFKA_PARTITIONS)")
		kafkaReplication = fs.Int64("kafka-replication", envInt("KAFKA_REPLICATION", app.DefaultKafkaReplication), "replication factor of created event topics; -1 is the broker default (env KAFKA_REPLICATION)")
		outboxDir        = fs.String("outbox-dir", env("GATEWAY_OUTBOX_DIR", app.DefaultOutboxDir), "directory of the durable event outbox (env GATEWAY_OUTBOX_DIR)")
		outboxDelay      = fs.Duration("outbox-commit-delay", envDuration("GATEWAY_OUTBOX_COMMIT_DELAY", app.DefaultOutboxCommitDelay), "how long the outbox waits to group concurrent events into one fsync; a lone request is never delayed (env GATEWAY_OUTBOX_COMMIT_DELAY)")
		outboxSync       = fs.String("outbox-sync", env("GATEWAY_OUTBOX_SYNC", app.OutboxSyncAlways), "outbox sync policy: always (fdatasync before answering; survives power loss) or interval (fdatasync every -outbox-sync-interval; survives a process crash, may lose that interval on power loss) (env GATEWAY_OUTBOX_SYNC)")
		outboxSyncEvery  = fs.Duration("outbox-sync-interval", envDuration("GATEWAY_OUTBOX_SYNC_INTERVAL", app.DefaultOutboxSyncInterval), "how often the outbox syncs under -outbox-sync=interval (env GATEWAY_OUTBOX_SYNC_INTERVAL)")
		outboxMaxBytes   = fs.Int64("outbox-max-bytes", envInt("GATEWAY_OUTBOX_MAX_BYTES", outbox.DefaultMaxBytes), "cap on events waiting for Kafka; at the cap mutations get 503 (env GATEWAY_OUTBOX_MAX_BYTES)")
		eventFormat      = fs.String("event-format", env("GATEWAY_EVENT_FORMAT", string(events.FormatJSON)), "event data encoding: json or protobuf (env GATEWAY_EVENT_FORMAT)")
		eventSource      = fs.String("event-source", env("GATEWAY_EVENT_SOURCE", ""), "CloudEvents source (ce_source) naming this deployment; give every gateway instance of one deployment the same; empty: "+events.DefaultSource+"/<id made once and kept in <outbox-dir>/"+app.SourceIDFile+"> (env GATEWAY_EVENT_SOURCE)")
		eventSchemaBase  = fs.String("event-schema-base", env("GATEWAY_EVENT_SCHEMA_BASE", ""), "base URL at which event consumers reach this gateway's REST port; ce_dataschema is <base>/asyncapi.json#/components/schemas/<type>; empty: http://<REST listen host, or the host name>:<REST port> (env GATEWAY_EVENT_SCHEMA_BASE)")
		authJWKS         = fs.String("auth-jwks", env("GATEWAY_AUTH_JWKS", ""), "JWKS of the token signing keys: a file path (re-read when it changes) or an http(s) URL (refreshed); required unless -auth-disabled (env GATEWAY_AUTH_JWKS)")
		authIssuer       = fs.String("auth-issuer", env("GATEWAY_AUTH_ISSUER", ""), "required iss claim of tokens; empty accepts any issuer (env GATEWAY_AUTH_ISSUER)")
		authAudience     = fs.String("auth-audience", env("GATEWAY_AUTH_AUDIENCE", ""), "accepted aud values, comma-separated; empty accepts any audience (env GATEWAY_AUTH_AUDIENCE)")
		authDisabled     = fs.Bool("auth-disabled", envBool("GATEWAY_AUTH_DISABLED", false), "turn authentication and authorization off, for local development only (env GATEWAY_AUTH_DISABLED)")
		authLeeway       = fs.Duration("auth-leeway", envDuration("GATEWAY_AUTH_LEEWAY", auth.DefaultLeeway), "clock skew allowed on exp and nbf (env GATEWAY_AUTH_LEEWAY)")
		authRefresh      = fs.Duration("auth-jwks-refresh", envDuration("GATEWAY_AUTH_JWKS_REFRESH", auth.DefaultRefreshInterval), "how often a JWKS URL is fetched again; an unknown kid also triggers a fetch, at most every 10s (env GATEWAY_AUTH_JWKS_REFRESH)")
		svcKey           = fs.String("service-signing-key", env("GATEWAY_SERVICE_SIGNING_KEY", ""), "private JWK (EdDSA or ES256) the identity assertion of every service call is signed with; the services trust its public half; required (env GATEWAY_SERVICE_SIGNING_KEY)")
		svcIssuer        = fs.String("service-issuer", env("GATEWAY_SERVICE_ISSUER", svcid.DefaultIssuer), "the gateway's name (iss) in the identity assertions; the services must list it as a user issuer (env GATEWAY_SERVICE_ISSUER)")
		rateLimit        = fs.Float64("rate-limit", envFloat("GATEWAY_RATE_LIMIT", 0), "requests per second per client (token subject, else client IP); 0 turns rate limiting off (env GATEWAY_RATE_LIMIT)")
		rateBurst        = fs.Int64("rate-burst", envInt("GATEWAY_RATE_BURST", 0), "requests a client may send at once; 0 means the rate rounded up (env GATEWAY_RATE_BURST)")
		trusted          = fs.String("trusted-proxies", env("GATEWAY_TRUSTED_PROXIES", ""), "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated; their connections are held to -max-conns only, not -max-conns-per-ip; empty trusts none (env GATEWAY_TRUSTED_PROXIES)")

		corsOrigins       = fs.String("cors-origins", env("GATEWAY_CORS_ORIGINS", ""), "origins allowed to call the REST API from a browser, comma-separated (* for any); empty turns CORS off (env GATEWAY_CORS_ORIGINS)")
		maxBodyBytes      = fs.Int64("max-body-bytes", envInt("GATEWAY_MAX_BODY_BYTES", server.DefaultMaxBodyBytes), "largest REST request body (413 above) and gRPC request message (RESOURCE_EXHAUSTED) (env GATEWAY_MAX_BODY_BYTES)")
		maxHeaderBytes    = fs.Int64("max-header-bytes", envInt("GATEWAY_MAX_HEADER_BYTES", server.DefaultMaxHeaderBytes), "largest REST request header (431 above) and gRPC header list (env GATEWAY_MAX_HEADER_BYTES)")
		readHeaderTimeout = fs.Duration("read-header-timeout", envDuration("GATEWAY_READ_HEADER_TIMEOUT", server.DefaultReadHeaderTimeout), "time allowed to send a REST request's header (env GATEWAY_READ_HEADER_TIMEOUT)")
		readTimeout       = fs.Duration("read-timeout", envDuration("GATEWAY_READ_TIMEOUT", server.DefaultReadTimeout), "time allowed to send a whole REST request, body included; a slower client is cut off (env GATEWAY_READ_TIMEOUT)")
		writeTimeout      = fs.Duration("write-timeout", envDuration("GATEWAY_WRITE_TIMEOUT", server.DefaultWriteTimeout), "time allowed from the end of a REST request's header to the end of its response; keep it above the longest call deadline (env GATEWAY_WRITE_TIMEOUT)")
		idleTimeout       = fs.Duration("idle-timeout", envDuration("GATEWAY_IDLE_TIMEOUT", server.DefaultIdleTimeout), "an idle keep-alive REST connection or a gRPC connection without calls is closed after this (env GATEWAY_IDLE_TIMEOUT)")
		maxConns          = fs.Int64("max-conns", envInt("GATEWAY_MAX_CONNS", 0), "open connections allowed per port; over it REST answers 503 and gRPC closes; 0 = 3/4 of the file-descriptor limit, at most 10000 (env GATEWAY_MAX_CONNS)")
		maxConnsPerIP     = fs.Int64("max-conns-per-ip", envInt("GATEWAY_MAX_CONNS_PER_IP", 0), "open connections allowed per client address (IPv6: per /64) and port (REST answers 429 over it); 0 = max-conns/16, at most 256 (env GATEWAY_MAX_CONNS_PER_IP)")
		firstByteTimeout  = fs.Duration("first-byte-timeout", envDuration("GATEWAY_FIRST_BYTE_TIMEOUT", connlimit.DefaultFirstByteTimeout), "a new REST or gRPC connection that sends nothing for this long is closed; negative turns it off (env GATEWAY_FIRST_BYTE_TIMEOUT)")
		grpcMaxStreams    = fs.Int64("grpc-max-streams", envInt("GATEWAY_GRPC_MAX_STREAMS", server.DefaultGRPCMaxStreams), "concurrent calls allowed on one gRPC connection (env GATEWAY_GRPC_MAX_STREAMS)")
		grpcKeepaliveMin  = fs.Duration("grpc-keepalive-min-time", envDuration("GATEWAY_GRPC_KEEPALIVE_MIN_TIME", server.DefaultGRPCKeepaliveMinTime), "shortest keepalive ping interval allowed to gRPC clients; faster pingers are disconnected (env GATEWAY_GRPC_KEEPALIVE_MIN_TIME)")

		liveMaxStreams    = fs.Int64("live-max-streams", envInt("GATEWAY_LIVE_MAX_STREAMS", live.DefaultMaxStreams), "open Watch streams (live updates) allowed on this instance; over it RESOURCE_EXHAUSTED (env GATEWAY_LIVE_MAX_STREAMS)")
		livePerUser       = fs.Int64("live-max-streams-per-user", envInt("GATEWAY_LIVE_MAX_STREAMS_PER_USER", live.DefaultMaxStreamsPerUser), "open Watch streams allowed per caller (token user, else client address) (env GATEWAY_LIVE_MAX_STREAMS_PER_USER)")
		liveBuffer        = fs.Int64("live-buffer", envInt("GATEWAY_LIVE_BUFFER", live.DefaultBuffer), "events a Watch stream may fall behind before it is ended with RESOURCE_EXHAUSTED (env GATEWAY_LIVE_BUFFER)")
		liveHeartbeat     = fs.Duration("live-heartbeat", envDuration("GATEWAY_LIVE_HEARTBEAT", live.DefaultHeartbeat), "a Watch stream without events is sent its position (a resume token without an event) after this long, at least 100ms (env GATEWAY_LIVE_HEARTBEAT)")
		liveMaxAge        = fs.Duration("live-max-age", envDuration("GATEWAY_LIVE_MAX_AGE", live.DefaultMaxAge), "a Watch stream ends after this long, resumable; it also ends when the caller's token expires (env GATEWAY_LIVE_MAX_AGE)")
		idempotencyWindow = fs.Duration("idempotency-window", envDuration("GATEWAY_IDEMPOTENCY_WINDOW", events.DefaultIdempotencyWindow), "how long a mutation's response is replayed for a repeated Idempotency-Key (env GATEWAY_IDEMPOTENCY_WINDOW)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(envErrors...); err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	topics, err := app.ParseTopicMap(*kafkaTopics)
	if err != nil {
		return fmt.Errorf("-kafka-topics: %w", err)
	}
	if *kafkaPartitions < 1 || *kafkaPartitions > math.MaxInt32 {
		return fmt.Errorf("-kafka-partitions %d: want 1 or more", *kafkaPartitions)
	}
	if *kafkaReplication < -1 || *kafkaReplication > math.MaxInt16 || *kafkaReplication == 0 {
		return fmt.Errorf("-kafka-replication %d: want -1 or 1 and more", *kafkaReplication)
	}
	if *logFlush < 0 {
		return fmt.Errorf("-log-flush-interval %s: must not be negative", *logFlush)
	}
	if *gcPercent < 0 || *gcPercent > 10000 {
		return fmt.Errorf("-gc-percent %d: want 0 to 10000", *gcPercent)
	}
	commitDelay := *outboxDelay
	if commitDelay == 0 {
		commitDelay = -1 // EventsConfig's value for "commit at once"; its 0 is the default
	}
	proxies, err := ratelimit.ParsePrefixes(*trusted)
	if err != nil {
		return fmt.Errorf("-trusted-proxies: %w", err)
	}
	if *rateBurst < 0 || *rateBurst > math.MaxInt32 {
		return fmt.Errorf("-rate-burst %d: want 0 to %d", *rateBurst, math.MaxInt32)
	}
	for name, v := range map[string]int64{"max-body-bytes": *maxBodyBytes, "max-header-bytes": *maxHeaderBytes, "max-conns": *maxConns,
		"max-conns-per-ip": *maxConnsPerIP, "grpc-max-streams": *grpcMaxStreams} {
		if v < 0 || v > math.MaxInt32 {
			return fmt.Errorf("-%s %d: want 0 to %d", name, v, math.MaxInt32)
		}
	}
	log, logOut, err := newLogger(os.Stderr, *logFormat, *logLevel, *logFlush)
	if err != nil {
		return err
	}
	if *gcPercent > 0 {
		debug.SetGCPercent(int(*gcPercent))
	}
	defer logOut.Close()
	cfg := app.Config{
		HTTPAddr:         *httpAddr,
		GRPCAddr:         *grpcAddr,
		AdminAddr:        *adminAddr,
		ServiceA:         app.SplitList(*serviceA),
		ServiceB:         app.SplitList(*serviceB),
		UpstreamTimeout:  *upstreamTimeout,
		FallbackFraction: *fallbackFraction,
		FallbackMax:      *fallbackMax,
		ShutdownTimeout:  *shutdownTimeout,
		NoAPIDocs:        !*apiDocs,
		Tracing:          telemetry.FromEnv(os.Getenv),
		Events: app.EventsConfig{
			Brokers:            app.SplitList(*kafkaBrokers),
			OutboxDir:          *outboxDir,
			OutboxMaxBytes:     *outboxMaxBytes,
			OutboxCommitDelay:  commitDelay,
			OutboxSync:         *outboxSync,
			OutboxSyncInterval: *outboxSyncEvery,
			Format:             *eventFormat,
			Source:             *eventSource,
			SchemaBase:         *eventSchemaBase,
			Topics:             topics,
			Partitions:         int32(*kafkaPartitions),
			Replication:        int16(*kafkaReplication),
			IdempotencyWindow:  *idempotencyWindow,
		},
		Live: app.LiveConfig{
			MaxStreams:        int(*liveMaxStreams),
			MaxStreamsPerUser: int(*livePerUser),
			Buffer:            int(*liveBuffer),
			MaxAge:            *liveMaxAge,
			Heartbeat:         *liveHeartbeat,
		},
		ServiceSigningKey: *svcKey,
		ServiceIssuer:     *svcIssuer,
		Auth: app.AuthConfig{
			Disabled:        *authDisabled,
			JWKS:            *authJWKS,
			Issuer:          *authIssuer,
			Audience:        app.SplitList(*authAudience),
			Leeway:          *authLeeway,
			RefreshInterval: *authRefresh,
		},
		Limits: server.Limits{
			MaxBodyBytes:         *maxBodyBytes,
			MaxHeaderBytes:       int(*maxHeaderBytes),
			ReadHeaderTimeout:    *readHeaderTimeout,
			ReadTimeout:          *readTimeout,
			WriteTimeout:         *writeTimeout,
			IdleTimeout:          *idleTimeout,
			MaxConns:             int(*maxConns),
			MaxConnsPerIP:        int(*maxConnsPerIP),
			FirstByteTimeout:     *firstByteTimeout,
			GRPCMaxStreams:       uint32(*grpcMaxStreams),
			GRPCKeepaliveMinTime: *grpcKeepaliveMin,
			CORSOrigins:          app.SplitList(*corsOrigins),
		},
		RateLimit:      *rateLimit,
		RateBurst:      int(*rateBurst),
		TrustedProxies: proxies,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, cfg, log)
}

// newLogger builds the gateway's logger on out, through a buffer that the
// caller must Close to write out the last lines. flush 0 means no buffer.
func newLogger(out *os.File, format, level string, flush time.Duration) (*slog.Logger, *logbuf.Writer, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	format = strings.ToLower(format)
	switch format {
	case "json", "text":
	case "auto":
		format = "json"
		if fi, err := out.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	default:
		return nil, nil, fmt.Errorf("log format %q: want json, text or auto", format)
	}
	if flush == 0 {
		flush = -1 // logbuf's value for "no buffer"
	}
	w, err := logbuf.New(out, logbuf.Config{FlushInterval: flush})
	if err != nil {
		return nil, nil, err
	}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logbuf.Handler(h, w)), w, nil
}
