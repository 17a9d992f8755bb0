package main

import (
	"errors"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
	"net/netip"
	"os"
	"strconv"
	"strings"
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
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// options are the gateway's settings once parsed and checked; declare
// says, for each, its flag, variable, default, range and documentation.
type options struct {
	httpAddr, grpcAddr, adminAddr string
	serviceA, serviceB            []string
	upstreamTimeout, fallbackMax  time.Duration
	fallbackFraction              float64
	shutdownTimeout               time.Duration
	apiDocs                       bool
	logFormat, logLevel           string
	gcPercent                     int64
	logFlush                      time.Duration

	kafkaBrokers                  []string
	kafkaTopics                   map[string]string
	kafkaPartitions, replication  int64
	outboxDir                     string
	outboxMaxBytes                int64
	outboxDelay                   time.Duration
	outboxSync                    string
	outboxSyncEvery               time.Duration
	eventFormat                   string
	eventSource, eventSchemaBase  string
	idempotencyWindow             time.Duration
	liveMaxStreams, livePerUser   int64
	liveBuffer                    int64
	liveHeartbeat                 time.Duration
	liveMaxAge                    time.Duration
	authJWKS, authIssuer          string
	authAudience                  []string
	authLeeway, authRefresh       time.Duration
	authDisabled                  bool
	svcKey, svcIssuer             string
	rateLimit                     float64
	rateBurst                     int64
	trusted                       []netip.Prefix
	corsOrigins                   []string
	maxBodyBytes, maxHeaderBytes  int64
	readHeaderTimeout             time.Duration
	readTimeout, writeTimeout     time.Duration
	idleTimeout, firstByteTimeout time.Duration
	maxConns, maxConnsPerIP       int64
	grpcMaxStreams                int64
	grpcKeepaliveMin              time.Duration
}

// declare lists every setting of o, in the README's order.
func (o *options) declare() settings {
	var s settings
	o.declareServing(&s)
	o.declareEvents(&s)
	o.declareAuth(&s)
	o.declareLimits(&s)
	return s
}

// dur writes a default duration as a person would: 1h, not 1h0m0s.
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (o *options) declareServing(s *settings) {
	s.add(setting{name: "http-addr", env: "GATEWAY_HTTP_ADDR", def: server.DefaultHTTPAddr, value: textValue(&o.httpAddr),
		doc: "REST listen address (the API, `/healthz` and a one-word `/readyz` too)"})
	s.add(setting{name: "grpc-addr", env: "GATEWAY_GRPC_ADDR", def: server.DefaultGRPCAddr, value: textValue(&o.grpcAddr),
		doc: "gRPC listen address"})
	s.add(setting{name: "admin-addr", env: "GATEWAY_ADMIN_ADDR", def: server.DefaultAdminAddr, emptySet: true, value: parsedValue(&o.adminAddr, offToEmpty),
		doc: "admin listen address: `GET /metrics` and `GET /readyz` with every dependency's details (and `/healthz`); keep it private (loopback, or an operator-only network); `off` (or empty) turns it off"})
	s.add(setting{name: "service-a", env: "SERVICE_A_URL", def: app.DefaultServiceA, value: listValue(&o.serviceA),
		doc: "service A instances, comma-separated base URLs"})
	s.add(setting{name: "service-b", env: "SERVICE_B_URL", def: app.DefaultServiceB, value: listValue(&o.serviceB),
		doc: "service B instances, comma-separated base URLs"})
	s.add(setting{name: "upstream-timeout", env: "GATEWAY_UPSTREAM_TIMEOUT", def: dur(upstream.DefaultTimeout), value: durationValue(&o.upstreamTimeout, time.Millisecond, false),
		doc: "bound of an upstream call when the caller set no deadline"})
	s.add(setting{name: "cart-fallback-max", env: "GATEWAY_CART_FALLBACK_MAX", def: dur(forward.DefaultFallbackMax), value: durationValue(&o.fallbackMax, time.Millisecond, false),
		doc: "most time a cart read gives service B before service A's fallback cart answers"})
	s.add(setting{name: "cart-fallback-fraction", env: "GATEWAY_CART_FALLBACK_FRACTION", def: strconv.FormatFloat(forward.DefaultFallbackFraction, 'g', -1, 64),
		value: floatValue(&o.fallbackFraction, 0, 1, true, false),
		doc:   "share (0 < f <= 1) of a cart read's remaining deadline given to service B"})
	s.add(setting{name: "shutdown-timeout", env: "GATEWAY_SHUTDOWN_TIMEOUT", def: dur(server.DefaultShutdownTimeout), value: durationValue(&o.shutdownTimeout, 0, false),
		doc: "drain bound on SIGTERM"})
	s.add(setting{name: "api-docs", env: "GATEWAY_API_DOCS", def: "true", value: boolFlag(&o.apiDocs),
		doc: "serve `GET /openapi.json`, the explorer at `/docs/` and the events' `GET /asyncapi.json` on the REST port"})
	s.add(setting{name: "log-format", env: "GATEWAY_LOG_FORMAT", def: "auto", value: oneOfValue(&o.logFormat, "json", "text", "auto"),
		doc: "`json`, `text`, or `auto` (text on a terminal)"})
	s.add(setting{name: "log-level", env: "GATEWAY_LOG_LEVEL", def: "info", value: oneOfValue(&o.logLevel, "debug", "info", "warn", "error"),
		doc: "`debug`, `info`, `warn`, `error`"})
	s.add(setting{name: "gc-percent", env: "GATEWAY_GC_PERCENT", def: itoa(defaultGCPercent), value: intValue(&o.gcPercent, 0, 10000, false),
		doc: "garbage collector target, as `GOGC` (heap growth in percent between collections, up to 10000); `0` keeps Go's own (`GOGC`, else 100); `GOMEMLIMIT` still bounds the heap. 400 keeps the collector out of the tail latency for ~25 MiB more RSS"})
	s.add(setting{name: "log-flush-interval", env: "GATEWAY_LOG_FLUSH_INTERVAL", def: dur(logbuf.DefaultFlushInterval), value: durationValue(&o.logFlush, 0, false),
		doc: "longest a log line waits in the buffer (warnings, errors and shutdown write it out at once); `0` writes every line at once"})
}

func (o *options) declareEvents(s *settings) {
	s.add(setting{name: "kafka-brokers", env: "KAFKA_BROKERS", def: app.DefaultKafkaBrokers, emptySet: true, value: listValue(&o.kafkaBrokers),
		doc: "bootstrap brokers, comma-separated; `off` (or empty) turns events off"})
	s.add(setting{name: "kafka-topics", env: "KAFKA_TOPICS", value: parsedValue(&o.kafkaTopics, app.ParseTopicMap),
		doc: "`logical=actual` topic renames, e.g. `shop.cart.v1=prod.cart`"})
	s.add(setting{name: "kafka-partitions", env: "KAFKA_PARTITIONS", def: itoa(app.DefaultKafkaPartitions), value: intValue(&o.kafkaPartitions, 1, maxInt32, false),
		doc: "partitions of event topics created at start-up"})
	s.add(setting{name: "kafka-replication", env: "KAFKA_REPLICATION", def: "broker", value: parsedValue(&o.replication, parseReplication),
		doc: "replication factor of created topics; `broker`: the broker's `default.replication.factor`"})
	s.add(setting{name: "outbox-dir", env: "GATEWAY_OUTBOX_DIR", def: app.DefaultOutboxDir, value: parsedValue(&o.outboxDir, nonEmpty),
		doc: "directory of the durable event outbox"})
	s.add(setting{name: "outbox-max-bytes", env: "GATEWAY_OUTBOX_MAX_BYTES", def: itoa(outbox.DefaultMaxBytes), note: "(256 MiB)", value: intValue(&o.outboxMaxBytes, 4<<10, 1<<40, false),
		doc: "cap of events waiting for Kafka (4 KiB to 1 TiB); at the cap mutations get 503 before reaching a service"})
	s.add(setting{name: "outbox-commit-delay", env: "GATEWAY_OUTBOX_COMMIT_DELAY", def: dur(app.DefaultOutboxCommitDelay), value: durationValue(&o.outboxDelay, 0, false),
		doc: "group commit: how long the outbox waits to put concurrent events into one fsync (a lone request is never delayed); `0` syncs each batch at once"})
	s.add(setting{name: "outbox-sync", env: "GATEWAY_OUTBOX_SYNC", def: app.OutboxSyncAlways, value: oneOfValue(&o.outboxSync, app.OutboxSyncAlways, app.OutboxSyncInterval),
		doc: "`always`: fdatasync each batch of events before the answers go out (an answered mutation's event survives power loss); `interval`: write before answering, fdatasync every `-outbox-sync-interval` (survives a crash of the gateway process, may lose the last interval on power loss or a kernel crash)"})
	s.add(setting{name: "outbox-sync-interval", env: "GATEWAY_OUTBOX_SYNC_INTERVAL", def: dur(app.DefaultOutboxSyncInterval), value: durationValue(&o.outboxSyncEvery, time.Millisecond, false),
		doc: "the fdatasync period of `-outbox-sync=interval`"})
	s.add(setting{name: "event-format", env: "GATEWAY_EVENT_FORMAT", def: string(events.FormatJSON), value: oneOfValue(&o.eventFormat, string(events.FormatJSON), string(events.FormatProtobuf)),
		doc: "event data: `json` (protojson) or `protobuf`"})
	s.add(setting{name: "event-source", env: "GATEWAY_EVENT_SOURCE", value: textValue(&o.eventSource),
		doc: "CloudEvents `ce_source`, the name of the deployment; empty: `" + events.DefaultSource + "/<uuid>`, the UUID made on first start and kept in `<outbox-dir>/" + app.SourceIDFile + "`. Give every gateway instance of one deployment the same value ([why](#consuming-the-events))"})
	s.add(setting{name: "event-schema-base", env: "GATEWAY_EVENT_SCHEMA_BASE", value: textValue(&o.eventSchemaBase),
		doc: "base URL at which event consumers reach the gateway's REST port; `ce_dataschema` is `<base>/asyncapi.json#/components/schemas/<ce_type>`; empty: `http://<listen host, or the host name>:<REST port>`. Set it to the public URL in production"})
	s.add(setting{name: "idempotency-window", env: "GATEWAY_IDEMPOTENCY_WINDOW", def: dur(events.DefaultIdempotencyWindow), value: durationValue(&o.idempotencyWindow, time.Second, false),
		doc: "how long a mutation's answer is replayed for its `Idempotency-Key`"})
	s.add(setting{name: "live-max-streams", env: "GATEWAY_LIVE_MAX_STREAMS", def: itoa(live.DefaultMaxStreams), value: intValue(&o.liveMaxStreams, 1, maxInt32, false),
		doc: "open Watch streams (live updates) on this instance; over it `RESOURCE_EXHAUSTED`"})
	s.add(setting{name: "live-max-streams-per-user", env: "GATEWAY_LIVE_MAX_STREAMS_PER_USER", def: itoa(live.DefaultMaxStreamsPerUser), value: intValue(&o.livePerUser, 1, maxInt32, false),
		doc: "open Watch streams per caller (token user, else client address)"})
	s.add(setting{name: "live-buffer", env: "GATEWAY_LIVE_BUFFER", def: itoa(live.DefaultBuffer), value: intValue(&o.liveBuffer, 1, 1<<20, false),
		doc: "events a Watch stream may fall behind before it is ended with `RESOURCE_EXHAUSTED`"})
	s.add(setting{name: "live-heartbeat", env: "GATEWAY_LIVE_HEARTBEAT", def: dur(live.DefaultHeartbeat), value: durationValue(&o.liveHeartbeat, 100*time.Millisecond, false),
		doc: "a Watch stream without events is sent its position (a resume token without an event) after this long; at least 100ms"})
	s.add(setting{name: "live-max-age", env: "GATEWAY_LIVE_MAX_AGE", def: dur(live.DefaultMaxAge), value: durationValue(&o.liveMaxAge, time.Second, false),
		doc: "a Watch stream ends after this long (resumable); it also ends when the caller's token expires"})
}

func (o *options) declareAuth(s *settings) {
	s.add(setting{name: "auth-jwks", env: "GATEWAY_AUTH_JWKS", value: textValue(&o.authJWKS),
		doc: "required: JWKS of the token signing keys: a file path (re-read when it changes) or an http(s) URL (refreshed); without it the gateway does not start unless `-auth-disabled`"})
	s.add(setting{name: "auth-issuer", env: "GATEWAY_AUTH_ISSUER", value: textValue(&o.authIssuer),
		doc: "required `iss` of tokens; empty accepts any issuer (a warning at start)"})
	s.add(setting{name: "auth-audience", env: "GATEWAY_AUTH_AUDIENCE", value: listValue(&o.authAudience),
		doc: "accepted `aud` values, comma-separated; empty accepts any (a warning at start)"})
	s.add(setting{name: "auth-leeway", env: "GATEWAY_AUTH_LEEWAY", def: dur(auth.DefaultLeeway), value: durationValue(&o.authLeeway, 0, false),
		doc: "clock skew allowed on `exp` and `nbf`"})
	s.add(setting{name: "auth-jwks-refresh", env: "GATEWAY_AUTH_JWKS_REFRESH", def: dur(auth.DefaultRefreshInterval), value: durationValue(&o.authRefresh, time.Second, false),
		doc: "how often a JWKS URL is fetched again (an unknown `kid` also refetches, at most every 10 s)"})
	s.add(setting{name: "auth-disabled", env: "GATEWAY_AUTH_DISABLED", def: "false", value: boolFlag(&o.authDisabled),
		doc: "no authentication or authorization at all; local experiments only"})
	s.add(setting{name: "service-signing-key", env: "GATEWAY_SERVICE_SIGNING_KEY", value: textValue(&o.svcKey),
		doc: "required: private JWK (EdDSA or ES256) the identity assertion of every service call is signed with; the services trust its public half (`make run` creates `.run/service-signing-key.json`)"})
	s.add(setting{name: "service-issuer", env: "GATEWAY_SERVICE_ISSUER", def: svcid.DefaultIssuer, value: parsedValue(&o.svcIssuer, nonEmpty),
		doc: "the gateway's name (`iss`) in those assertions; the services list it in `IDENTITY_USER_ISSUERS`"})
	s.add(setting{name: "rate-limit", env: "GATEWAY_RATE_LIMIT", def: off, value: floatValue(&o.rateLimit, 0, 1e9, false, true),
		doc: "requests per second per client (token subject, else client address); `off` (or `0`) turns rate limiting off"})
	s.add(setting{name: "rate-burst", env: "GATEWAY_RATE_BURST", def: "0", note: "(the rate, rounded up)", value: intValue(&o.rateBurst, 0, maxInt32, false),
		doc: "requests a client may send at once"})
	s.add(setting{name: "trusted-proxies", env: "GATEWAY_TRUSTED_PROXIES", value: parsedValue(&o.trusted, ratelimit.ParsePrefixes),
		doc: "CIDRs whose `X-Forwarded-For` names the client, comma-separated; their connections are held to `-max-conns` only, not to `-max-conns-per-ip`"})
}

func (o *options) declareLimits(s *settings) {
	s.add(setting{name: "cors-origins", env: "GATEWAY_CORS_ORIGINS", value: listValue(&o.corsOrigins),
		doc: "empty = CORS off; origins allowed to call the REST API from a browser, comma-separated; `*` for any"})
	s.add(setting{name: "max-body-bytes", env: "GATEWAY_MAX_BODY_BYTES", def: itoa(server.DefaultMaxBodyBytes), note: "(1 MiB)", value: intValue(&o.maxBodyBytes, 1, maxInt32, false),
		doc: "largest REST body (413 above) and gRPC request message (RESOURCE_EXHAUSTED)"})
	s.add(setting{name: "max-header-bytes", env: "GATEWAY_MAX_HEADER_BYTES", def: itoa(server.DefaultMaxHeaderBytes), note: "(64 KiB)", value: intValue(&o.maxHeaderBytes, 1, maxInt32, false),
		doc: "largest REST request header (431 above) and gRPC header list"})
	s.add(setting{name: "read-header-timeout", env: "GATEWAY_READ_HEADER_TIMEOUT", def: dur(server.DefaultReadHeaderTimeout), value: durationValue(&o.readHeaderTimeout, time.Millisecond, false),
		doc: "time to send a REST request's header"})
	s.add(setting{name: "read-timeout", env: "GATEWAY_READ_TIMEOUT", def: dur(server.DefaultReadTimeout), value: durationValue(&o.readTimeout, time.Millisecond, false),
		doc: "time to send a whole REST request, body included; a slower client is cut off"})
	s.add(setting{name: "write-timeout", env: "GATEWAY_WRITE_TIMEOUT", def: dur(server.DefaultWriteTimeout), value: durationValue(&o.writeTimeout, time.Millisecond, false),
		doc: "from the end of a REST request's header to the end of its response; keep it above the longest call deadline"})
	s.add(setting{name: "idle-timeout", env: "GATEWAY_IDLE_TIMEOUT", def: dur(server.DefaultIdleTimeout), value: durationValue(&o.idleTimeout, time.Millisecond, false),
		doc: "an idle keep-alive REST connection, or a gRPC connection without calls, is closed after it"})
	s.add(setting{name: "max-conns", env: "GATEWAY_MAX_CONNS", def: "0", note: "(3/4 of the fd limit, ≤ 10000)", value: intValue(&o.maxConns, 0, maxInt32, false),
		doc: "open connections per port; over it REST answers 503 and gRPC closes"})
	s.add(setting{name: "max-conns-per-ip", env: "GATEWAY_MAX_CONNS_PER_IP", def: "0", note: "(max-conns/16, ≤ 256)", value: intValue(&o.maxConnsPerIP, 0, maxInt32, false),
		doc: "open connections per client address (IPv6: per /64) and port; over it REST answers 429"})
	s.add(setting{name: "first-byte-timeout", env: "GATEWAY_FIRST_BYTE_TIMEOUT", def: dur(connlimit.DefaultFirstByteTimeout), value: durationValue(&o.firstByteTimeout, time.Millisecond, true),
		doc: "a new REST or gRPC connection that sends nothing for this long is closed (before `-read-header-timeout`); `off` turns it off"})
	s.add(setting{name: "grpc-max-streams", env: "GATEWAY_GRPC_MAX_STREAMS", def: itoa(server.DefaultGRPCMaxStreams), value: intValue(&o.grpcMaxStreams, 1, maxInt32, false),
		doc: "concurrent calls on one gRPC connection"})
	s.add(setting{name: "grpc-keepalive-min-time", env: "GATEWAY_GRPC_KEEPALIVE_MIN_TIME", def: dur(server.DefaultGRPCKeepaliveMinTime), value: durationValue(&o.grpcKeepaliveMin, time.Second, false),
		doc: "shortest keepalive ping interval allowed to gRPC clients"})
}

// offToEmpty reads "off" as "", the parts' value for "not at all".
func offToEmpty(s string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(s), off) {
		return "", nil
	}
	return s, nil
}

// nonEmpty refuses an empty value.
func nonEmpty(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", errors.New("must not be empty")
	}
	return s, nil
}

// parseReplication reads a replication factor (1 to 32767), or "broker"
// for the broker's default, which the topic admin takes as -1.
func parseReplication(s string) (int64, error) {
	if strings.EqualFold(s, "broker") {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 16)
	if err != nil || n < 1 {
		return 0, errors.New("want broker, or 1 to 32767")
	}
	return n, nil
}

// config is the application's configuration made of o.
func (o *options) config() app.Config {
	commitDelay := o.outboxDelay
	if commitDelay == 0 {
		commitDelay = -1 // EventsConfig's value for "commit at once"; its 0 is the default
	}
	return app.Config{
		HTTPAddr:         o.httpAddr,
		GRPCAddr:         o.grpcAddr,
		AdminAddr:        o.adminAddr,
		ServiceA:         o.serviceA,
		ServiceB:         o.serviceB,
		UpstreamTimeout:  o.upstreamTimeout,
		FallbackFraction: o.fallbackFraction,
		FallbackMax:      o.fallbackMax,
		ShutdownTimeout:  o.shutdownTimeout,
		NoAPIDocs:        !o.apiDocs,
		Tracing:          telemetry.FromEnv(os.Getenv),
		Events: app.EventsConfig{
			Brokers:            o.kafkaBrokers,
			OutboxDir:          o.outboxDir,
			OutboxMaxBytes:     o.outboxMaxBytes,
			OutboxCommitDelay:  commitDelay,
			OutboxSync:         o.outboxSync,
			OutboxSyncInterval: o.outboxSyncEvery,
			Format:             o.eventFormat,
			Source:             o.eventSource,
			SchemaBase:         o.eventSchemaBase,
			Topics:             o.kafkaTopics,
			Partitions:         int32(o.kafkaPartitions),
			Replication:        int16(o.replication),
			IdempotencyWindow:  o.idempotencyWindow,
		},
		Live: app.LiveConfig{
			MaxStreams:        int(o.liveMaxStreams),
			MaxStreamsPerUser: int(o.livePerUser),
			Buffer:            int(o.liveBuffer),
			MaxAge:            o.liveMaxAge,
			Heartbeat:         o.liveHeartbeat,
		},
		ServiceSigningKey: o.svcKey,
		ServiceIssuer:     o.svcIssuer,
		Auth: app.AuthConfig{
			Disabled:        o.authDisabled,
			JWKS:            o.authJWKS,
			Issuer:          o.authIssuer,
			Audience:        o.authAudience,
			Leeway:          o.authLeeway,
			RefreshInterval: o.authRefresh,
		},
		Limits: server.Limits{
			MaxBodyBytes:         o.maxBodyBytes,
			MaxHeaderBytes:       int(o.maxHeaderBytes),
			ReadHeaderTimeout:    o.readHeaderTimeout,
			ReadTimeout:          o.readTimeout,
			WriteTimeout:         o.writeTimeout,
			IdleTimeout:          o.idleTimeout,
			MaxConns:             int(o.maxConns),
			MaxConnsPerIP:        int(o.maxConnsPerIP),
			FirstByteTimeout:     o.firstByteTimeout,
			GRPCMaxStreams:       uint32(o.grpcMaxStreams),
			GRPCKeepaliveMinTime: o.grpcKeepaliveMin,
			CORSOrigins:          o.corsOrigins,
		},
		RateLimit:      o.rateLimit,
		RateBurst:      int(o.rateBurst),
		TrustedProxies: o.trusted,
	}
}
