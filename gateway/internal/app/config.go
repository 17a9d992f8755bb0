package app

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/server"
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

// Defaults of EventsConfig.
const (
	// DefaultKafkaBrokers is the gateway's Kafka when none is configured:
	// a local broker. The zero EventsConfig has no brokers (events off); the
	// gateway's -kafka-brokers flag starts from this one.
	DefaultKafkaBrokers = "127.0.0.1:9092"
	// DefaultOutboxDir is where the outbox lives when OutboxDir is empty,
	// relative to the working directory.
	DefaultOutboxDir = ".outbox"
	// DefaultOutboxCommitDelay is the group-commit delay: up to 1ms of
	// waiting for concurrent events to share one fsync.
	DefaultOutboxCommitDelay = time.Millisecond
	// OutboxSyncAlways fdatasyncs every batch of events before the answers
	// go out (group commit): an answered mutation's event survives power
	// loss. The default.
	OutboxSyncAlways = "always"
	// OutboxSyncInterval writes events to the file before the answers go
	// out and fdatasyncs at most every OutboxSyncInterval: an answered
	// mutation's event survives a crash of the gateway process at once, and
	// of the machine once the interval has passed.
	OutboxSyncInterval = "interval"
	// DefaultOutboxSyncInterval is the sync period of OutboxSyncInterval.
	DefaultOutboxSyncInterval = 100 * time.Millisecond
	// DefaultKafkaPartitions is the partition count of created topics.
	DefaultKafkaPartitions = 3
	// DefaultKafkaReplication is the replication factor of created topics:
	// -1 leaves it to the broker's default.replication.factor.
	DefaultKafkaReplication = -1
)

// EventsConfig configures the Kafka events of mutations. The zero value
// turns events off (no Brokers).
type EventsConfig struct {
	// Brokers lists the Kafka bootstrap brokers, "host:port"; empty turns
	// events off (no outbox, no relay, Idempotency-Key ignored).
	Brokers []string
	// OutboxDir is the directory of the durable outbox. One gateway process
	// per directory. Default DefaultOutboxDir (".outbox").
	OutboxDir string
	// OutboxMaxBytes caps the events waiting for Kafka; at the cap (less a
	// headroom of 1/16) mutations are refused with 503. Default
	// outbox.DefaultMaxBytes (256 MiB).
	OutboxMaxBytes int64
	// OutboxCommitDelay lets the outbox writer wait this long for more
	// events before an fsync when appends are concurrent (group commit).
	// Default DefaultOutboxCommitDelay (1ms); negative commits at once.
	OutboxCommitDelay time.Duration
	// OutboxSync is the outbox's sync policy: OutboxSyncAlways (default) or
	// OutboxSyncInterval.
	OutboxSync string
	// OutboxSyncInterval is how often the outbox syncs under
	// OutboxSyncInterval. Default DefaultOutboxSyncInterval (100ms).
	OutboxSyncInterval time.Duration
	// Format is the event data encoding, "json" or "protobuf". Default
	// events.FormatJSON.
	Format string
	// Source is the CloudEvents source (ce_source): the name of the
	// deployment, the same on every gateway instance of it. Default
	// events.DefaultSource + "/" + a UUID made on first start and kept in
	// the outbox directory (SourceIDFile): stable across restarts, so that
	// consumers deduplicating on source and id still recognise a redelivery,
	// and different for every deployment that has its own outbox, so that
	// two stacks sharing a broker do not collide. Several gateway instances
	// of one deployment (each with its own outbox) must be given one Source
	// explicitly, or a client's retry through another instance is not
	// recognised as the same event.
	Source string
	// SchemaBase is the base URL at which consumers reach the gateway's
	// REST port; each event's ce_dataschema is SchemaBase +
	// "/asyncapi.json#/components/schemas/" + its type. Default
	// http://<REST listen host, or the host name when it listens on all
	// addresses>:<REST port>.
	SchemaBase string
	// Topics maps the logical topics declared in the protos (shop.stock.v1,
	// shop.cart.v1, shop.order.v1) to Kafka topic names; unmapped ones keep
	// their name. Default none.
	Topics map[string]string
	// Partitions of the topics the gateway creates when missing. Default
	// DefaultKafkaPartitions (3).
	Partitions int32
	// Replication factor of created topics. Default
	// DefaultKafkaReplication (-1, the broker's default.replication.factor).
	Replication int16
	// IdempotencyWindow is how long a success is replayed for a repeated
	// Idempotency-Key. Default events.DefaultIdempotencyWindow (24h).
	IdempotencyWindow time.Duration
	// NoSync skips the outbox's fsyncs: events then survive a crash of the
	// process but not of the machine. For tests and benchmarks; no flag.
	NoSync bool
}

func (c *EventsConfig) setDefaults() {
	if c.OutboxDir == "" {
		c.OutboxDir = DefaultOutboxDir
	}
	if c.OutboxCommitDelay == 0 {
		c.OutboxCommitDelay = DefaultOutboxCommitDelay
	}
	if c.Format == "" {
		c.Format = string(events.FormatJSON)
	}
	if c.OutboxSync == "" {
		c.OutboxSync = OutboxSyncAlways
	}
	if c.OutboxSyncInterval == 0 {
		c.OutboxSyncInterval = DefaultOutboxSyncInterval
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultKafkaPartitions
	}
	if c.Replication == 0 {
		c.Replication = DefaultKafkaReplication
	}
	if c.IdempotencyWindow == 0 {
		c.IdempotencyWindow = events.DefaultIdempotencyWindow
	}
}

// Validate reports every problem at once. The topic names and the
// EventSpecs are checked when the emitter is built.
func (c *EventsConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return nil
	}
	var errs []error
	switch events.Format(c.Format) {
	case events.FormatJSON, events.FormatProtobuf:
	default:
		errs = append(errs, fmt.Errorf("event format %q: want json or protobuf", c.Format))
	}
	switch c.OutboxSync {
	case OutboxSyncAlways:
	case OutboxSyncInterval:
		if c.OutboxSyncInterval <= 0 {
			errs = append(errs, fmt.Errorf("outbox sync interval %s: want a positive duration", c.OutboxSyncInterval))
		}
	default:
		errs = append(errs, fmt.Errorf("outbox sync %q: want %s or %s", c.OutboxSync, OutboxSyncAlways, OutboxSyncInterval))
	}
	if err := checkSchemaBase(c.SchemaBase); err != nil {
		errs = append(errs, err)
	}
	if c.OutboxMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("outbox max bytes %d is negative", c.OutboxMaxBytes))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka partitions %d is below 1", c.Partitions))
	}
	if c.Replication < -1 {
		errs = append(errs, fmt.Errorf("kafka replication %d is below -1", c.Replication))
	}
	if c.IdempotencyWindow < 0 {
		errs = append(errs, fmt.Errorf("idempotency window %s is negative", c.IdempotencyWindow))
	}
	return errors.Join(errs...)
}
