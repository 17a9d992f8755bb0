package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"google.golang.org/grpc"

	"github.com/shopgateway/shop/gateway/internal/apidocs"
	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/metrics"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/relay"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/telemetry"
)

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

// eventsRunner is the running event pipeline, as New uses it.
type eventsRunner interface {
	Interceptor() grpc.UnaryServerInterceptor
	Checks() []server.Check
	Gauges(m *metrics.Metrics)
	Close()
}

// eventPipeline is the emitter, the outbox and the relay publishing it.
type eventPipeline struct {
	emitter   *events.Emitter
	ob        *outbox.Outbox
	intents   *outbox.Outbox
	relay     *relay.Relay
	relayDone chan struct{}
	// The resolver of left-over intents; it stops before the outboxes close.
	resolverDone chan struct{}
	stopResolver context.CancelFunc
	log          *slog.Logger
}

// newEvents opens the outbox, starts the relay in the background (Kafka may
// be down: the gateway serves and fills the outbox meanwhile) and builds
// the emitter. It returns nil when events are off.
func newEvents(ctx context.Context, cfg EventsConfig, lookup events.LookupFunc, callTimeout time.Duration, tr *telemetry.Tracing, log *slog.Logger) (eventsRunner, error) {
	if len(cfg.Brokers) == 0 {
		log.Warn("events off: no Kafka brokers configured")
		return nil, nil
	}
	ob, err := outbox.Open(cfg.OutboxDir, outbox.Options{
		MaxBytes:     cfg.OutboxMaxBytes,
		CommitDelay:  cfg.OutboxCommitDelay,
		SyncInterval: syncInterval(cfg),
		Logger:       log.With(slog.String("component", "outbox")),
		NoSync:       cfg.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	// The intent log is written before each mutation's upstream call and
	// never fsynced: it is for crashes of this process, and the page cache
	// survives those (see package events).
	il, err := outbox.Open(filepath.Join(cfg.OutboxDir, "intents"), outbox.Options{
		MaxBytes: cfg.OutboxMaxBytes,
		Logger:   log.With(slog.String("component", "intents")),
		NoSync:   true,
	})
	if err != nil {
		_ = ob.Close()
		return nil, fmt.Errorf("events: intents: %w", err)
	}
	source := cfg.Source
	if source == "" {
		if source, err = deploymentSource(cfg.OutboxDir); err != nil {
			_ = il.Close()
			_ = ob.Close()
			return nil, fmt.Errorf("events: %w", err)
		}
	}
	em, err := events.New(events.Config{
		Intents:           il,
		Lookup:            lookup,
		CallTimeout:       callTimeout,
		Services:          Services(),
		Outbox:            ob,
		Source:            source,
		DataSchema:        cfg.SchemaBase + apidocs.AsyncAPIPath,
		Format:            events.Format(cfg.Format),
		Topics:            cfg.Topics,
		IdempotencyWindow: cfg.IdempotencyWindow,
		Logger:            log.With(slog.String("component", "events")),
	})
	if err != nil {
		_ = il.Close()
		_ = ob.Close()
		return nil, err
	}
	var topics []relay.TopicSpec
	for _, t := range em.Topics() {
		topics = append(topics, relay.TopicSpec{Name: t, Partitions: cfg.Partitions, ReplicationFactor: cfg.Replication})
	}
	var tracer trace.Tracer
	if tr.Enabled() {
		tracer = tr.Tracer("github.com/shopgateway/shop/gateway/internal/relay")
	}
	rl, err := relay.New(relay.Config{
		Brokers: cfg.Brokers,
		Topics:  topics,
		Tracer:  tracer,
		Logger:  log.With(slog.String("component", "relay")),
	}, ob)
	if err != nil {
		_ = il.Close()
		_ = ob.Close()
		return nil, err
	}
	rctx, stopResolver := context.WithCancel(context.WithoutCancel(ctx))
	p := &eventPipeline{emitter: em, ob: ob, intents: il, relay: rl, relayDone: make(chan struct{}), resolverDone: make(chan struct{}), stopResolver: stopResolver, log: log}
	go func() {
		defer close(p.resolverDone)
		em.RunResolver(rctx)
	}()
	// The relay outlives ctx: it stops in Close, after the server has
	// drained, so that the events of the last requests are published too.
	go func() {
		defer close(p.relayDone)
		if err := rl.Run(context.WithoutCancel(ctx)); err != nil {
			log.Error("relay stopped", slog.Any("error", err))
		}
	}()
	st := ob.Stats()
	log.Info("events on", slog.Any("brokers", cfg.Brokers), slog.String("outbox_dir", cfg.OutboxDir),
		slog.Int64("outbox_depth", st.Depth), slog.Int64("outbox_max_bytes", st.MaxBytes), slog.String("outbox_sync", cfg.OutboxSync),
		slog.String("format", cfg.Format), slog.Any("topics", em.Topics()), slog.String("source", source),
		slog.String("data_schema", cfg.SchemaBase+apidocs.AsyncAPIPath))
	return p, nil
}

func (p *eventPipeline) Interceptor() grpc.UnaryServerInterceptor { return p.emitter.Interceptor() }

// Gauges registers the outbox and relay state as metrics read at scrape
// time.
func (p *eventPipeline) Gauges(m *metrics.Metrics) {
	m.GaugeFunc("shop_gateway_outbox_depth", "Events in the outbox not yet acknowledged by Kafka.",
		func() float64 { return float64(p.ob.Stats().Depth) })
	m.GaugeFunc("shop_gateway_outbox_bytes", "Bytes of events in the outbox not yet acknowledged by Kafka.",
		func() float64 { return float64(p.ob.Stats().Bytes) })
	m.GaugeFunc("shop_gateway_kafka_connected", "1 while the relay reaches Kafka, else 0.",
		func() float64 {
			if p.relay.Status().Connected {
				return 1
			}
			return 0
		})
}

// Checks reports Kafka and the outbox on /readyz. Kafka being unreachable
// does not make the gateway unready: mutations keep succeeding into the
// outbox, which is the point of it. A full or failed outbox does, because
// this instance then refuses every mutation and a load balancer should
// send them to one that has room; reads would be served, but readiness
// steers all traffic. With every instance full the whole fleet is unready,
// so size -outbox-max-bytes for the longest Kafka outage to be ridden out.
func (p *eventPipeline) Checks() []server.Check {
	return []server.Check{
		{Name: "kafka", Func: func(context.Context) (any, error) {
			st := p.relay.Status()
			d := map[string]any{"connected": st.Connected, "in_flight": st.InFlight}
			if !st.Since.IsZero() {
				d["since"] = st.Since.UTC().Format(time.RFC3339)
			}
			if st.LastError != "" {
				d["last_error"] = st.LastError
			}
			return d, nil
		}},
		{Name: "outbox", Func: func(context.Context) (any, error) {
			st := p.ob.Stats()
			d := map[string]any{
				"depth":      st.Depth,
				"bytes":      st.Bytes,
				"max_bytes":  st.MaxBytes,
				"full":       st.Full,
				"last_id":    uint64(st.LastID),
				"acked_id":   uint64(st.AckedID),
				"idempotent": p.emitter.Stats().IdempotencyEntries,
				"intents":    p.emitter.OpenIntents(),
				"intent_log": p.emitter.IntentLogDepth(),
			}
			if err := p.ob.Admit(); err != nil {
				return d, err
			}
			return d, nil
		}},
	}
}

// Close stops the relay (which flushes what is in flight) and then closes
// the outbox. The server must have drained first.
func (p *eventPipeline) Close() {
	p.stopResolver()
	<-p.resolverDone
	if err := p.intents.Close(); err != nil {
		p.log.Error("intent log close", slog.Any("error", err))
	}
	if err := p.relay.Close(); err != nil {
		// Closing the outbox under a relay that is still running makes it
		// stop; what it had in flight stays in the outbox for next time.
		p.log.Warn("relay close", slog.Any("error", err))
	} else {
		<-p.relayDone
	}
	if err := p.ob.Close(); err != nil {
		p.log.Error("outbox close", slog.Any("error", err))
	}
}

// syncInterval is the outbox's SyncInterval for the configured policy: 0
// (sync before answering) for always.
func syncInterval(cfg EventsConfig) time.Duration {
	if cfg.OutboxSync == OutboxSyncInterval {
		return cfg.OutboxSyncInterval
	}
	return 0
}

// SourceIDFile is the file in the outbox directory that keeps the id of
// the default CloudEvents source.
const SourceIDFile = "source-id"

// deploymentSource returns the default CloudEvents source of the gateway
// whose outbox is dir: events.DefaultSource + "/" + the UUID in
// dir/SourceIDFile, made (and synced) when the file does not exist. A file
// that holds no UUID is an error rather than replaced, since a new source
// would defeat the consumers' deduplication of what is redelivered. The
// outbox must be open (it holds the directory's lock).
func deploymentSource(dir string) (string, error) {
	path := filepath.Join(dir, SourceIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id, perr := uuid.Parse(strings.TrimSpace(string(b)))
		if perr != nil || len(b) > 64 {
			return "", fmt.Errorf("%s does not hold a UUID; restore it, or remove it to make a new source (consumers then see another deployment)", path)
		}
		return events.DefaultSource + "/" + id.String(), nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	id := uuid.NewString()
	tmp, err := os.CreateTemp(dir, SourceIDFile+".tmp*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return events.DefaultSource + "/" + id, nil
}

// defaultSchemaBase is the REST port's URL as seen from the machine: the
// listen host, or the host name when the gateway listens on every address.
func defaultSchemaBase(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "localhost"
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// checkSchemaBase accepts an absolute http(s) URL without credentials,
// query or fragment, not ending in "/".
func checkSchemaBase(base string) error {
	u, err := url.Parse(base)
	switch {
	case err != nil:
		return fmt.Errorf("event schema base %q: %w", base, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("event schema base %q: want an http or https URL", base)
	case u.User != nil, u.RawQuery != "", u.ForceQuery, u.Fragment != "", strings.HasSuffix(base, "/"):
		return fmt.Errorf("event schema base %q: want no credentials, query, fragment or trailing /", base)
	}
	return nil
}

// ParseTopicMap parses "logical=actual,logical=actual" into a map; blanks
// are skipped. An entry without "=", with an empty side, or a logical topic
// given twice is an error.
func ParseTopicMap(s string) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, kv := range SplitList(s) {
		logical, actual, ok := strings.Cut(kv, "=")
		logical, actual = strings.TrimSpace(logical), strings.TrimSpace(actual)
		switch {
		case !ok || logical == "" || actual == "":
			errs = append(errs, fmt.Errorf("%q: want logical=actual", kv))
		case out[logical] != "":
			errs = append(errs, fmt.Errorf("%q: topic %s mapped twice", kv, logical))
		default:
			out[logical] = actual
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
