package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

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
	ob, il, err := openLogs(cfg, log)
	if err != nil {
		return nil, err
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
	rl, err := newRelay(cfg, em.Topics(), ob, tr, log)
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

// openLogs opens the event outbox and the intent log beside it. The intent
// log is written before each mutation's upstream call and never fsynced: it
// is for crashes of this process, and the page cache survives those (see
// package events).
func openLogs(cfg EventsConfig, log *slog.Logger) (ob, il *outbox.Outbox, err error) {
	ob, err = outbox.Open(cfg.OutboxDir, outbox.Options{
		MaxBytes:     cfg.OutboxMaxBytes,
		CommitDelay:  cfg.OutboxCommitDelay,
		SyncInterval: syncInterval(cfg),
		Logger:       log.With(slog.String("component", "outbox")),
		NoSync:       cfg.NoSync,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("events: %w", err)
	}
	il, err = outbox.Open(filepath.Join(cfg.OutboxDir, "intents"), outbox.Options{
		MaxBytes: cfg.OutboxMaxBytes,
		Logger:   log.With(slog.String("component", "intents")),
		NoSync:   true,
	})
	if err != nil {
		_ = ob.Close()
		return nil, nil, fmt.Errorf("events: intents: %w", err)
	}
	return ob, il, nil
}

// newRelay is the relay from ob to Kafka, creating topics as configured.
func newRelay(cfg EventsConfig, names []string, ob *outbox.Outbox, tr *telemetry.Tracing, log *slog.Logger) (*relay.Relay, error) {
	var topics []relay.TopicSpec
	for _, t := range names {
		topics = append(topics, relay.TopicSpec{Name: t, Partitions: cfg.Partitions, ReplicationFactor: cfg.Replication})
	}
	var tracer trace.Tracer
	if tr.Enabled() {
		tracer = tr.Tracer("github.com/shopgateway/shop/gateway/internal/relay")
	}
	return relay.New(relay.Config{
		Brokers: cfg.Brokers,
		Topics:  topics,
		Tracer:  tracer,
		Logger:  log.With(slog.String("component", "relay")),
	}, ob)
}

// syncInterval is the outbox's SyncInterval for the configured policy: 0
// (sync before answering) for always.
func syncInterval(cfg EventsConfig) time.Duration {
	if cfg.OutboxSync == OutboxSyncInterval {
		return cfg.OutboxSyncInterval
	}
	return 0
}
