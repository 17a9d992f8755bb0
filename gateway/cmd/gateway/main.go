// Command gateway serves the shop API over REST and gRPC (by default on
// :8080 and :9090, server.DefaultHTTPAddr and server.DefaultGRPCAddr) and
// forwards every call to the Python service that owns it. It is the only
// place that reads flags and environment variables; every flag has an
// environment fallback, listed in the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/logbuf"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/server"
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

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(key string, def int64) int64 {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

// run defines the gateway's flags on fs, parses args and serves until
// SIGINT or SIGTERM.
func run(fs *flag.FlagSet, args []string) error {
	var (
		httpAddr         = fs.String("http-addr", env("GATEWAY_HTTP_ADDR", server.DefaultHTTPAddr), "REST listen address (env GATEWAY_HTTP_ADDR)")
		grpcAddr         = fs.String("grpc-addr", env("GATEWAY_GRPC_ADDR", server.DefaultGRPCAddr), "gRPC listen address (env GATEWAY_GRPC_ADDR)")
		serviceA         = fs.String("service-a", env("SERVICE_A_URL", app.DefaultServiceA), "service A instances, comma-separated base URLs (env SERVICE_A_URL)")
		serviceB         = fs.String("service-b", env("SERVICE_B_URL", app.DefaultServiceB), "service B instances, comma-separated base URLs (env SERVICE_B_URL)")
		upstreamTimeout  = fs.Duration("upstream-timeout", envDuration("GATEWAY_UPSTREAM_TIMEOUT", upstream.DefaultTimeout), "upstream call bound when the caller sets no deadline (env GATEWAY_UPSTREAM_TIMEOUT)")
		fallbackMax      = fs.Duration("cart-fallback-max", envDuration("GATEWAY_CART_FALLBACK_MAX", forward.DefaultFallbackMax), "most time a cart read gives service B before service A's fallback cart answers (env GATEWAY_CART_FALLBACK_MAX)")
		fallbackFraction = fs.Float64("cart-fallback-fraction", envFloat("GATEWAY_CART_FALLBACK_FRACTION", forward.DefaultFallbackFraction), "share of a cart read's remaining deadline given to service B, 0 < f <= 1 (env GATEWAY_CART_FALLBACK_FRACTION)")
		shutdownTimeout  = fs.Duration("shutdown-timeout", envDuration("GATEWAY_SHUTDOWN_TIMEOUT", server.DefaultShutdownTimeout), "drain bound on SIGTERM (env GATEWAY_SHUTDOWN_TIMEOUT)")
		logFormat        = fs.String("log-format", env("GATEWAY_LOG_FORMAT", "auto"), "log format: json, text, or auto (text on a terminal) (env GATEWAY_LOG_FORMAT)")
		apiDocs          = fs.Bool("api-docs", envBool("GATEWAY_API_DOCS", true), "serve the OpenAPI document at /openapi.json and the explorer at /docs/ on the REST port (env GATEWAY_API_DOCS)")
		logLevel         = fs.String("log-level", env("GATEWAY_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env GATEWAY_LOG_LEVEL)")
		logFlush         = fs.Duration("log-flush-interval", envDuration("GATEWAY_LOG_FLUSH_INTERVAL", logbuf.DefaultFlushInterval), "longest a log line waits in the buffer; warnings, errors and shutdown write it out at once; 0 writes every line at once (env GATEWAY_LOG_FLUSH_INTERVAL)")

		kafkaBrokers      = fs.String("kafka-brokers", envSet("KAFKA_BROKERS", app.DefaultKafkaBrokers), "Kafka bootstrap brokers, comma-separated; empty turns events off (env KAFKA_BROKERS, also when set empty)")
		kafkaTopics       = fs.String("kafka-topics", env("KAFKA_TOPICS", ""), "logical=actual Kafka topic names, comma-separated, e.g. shop.cart.v1=prod.cart; unmapped topics keep their name (env KAFKA_TOPICS)")
		kafkaPartitions   = fs.Int64("kafka-partitions", envInt("KAFKA_PARTITIONS", app.DefaultKafkaPartitions), "partitions of the event topics created when missing (env KAFKA_PARTITIONS)")
		kafkaReplication  = fs.Int64("kafka-replication", envInt("KAFKA_REPLICATION", app.DefaultKafkaReplication), "replication factor of created event topics; -1 is the broker default (env KAFKA_REPLICATION)")
		outboxDir         = fs.String("outbox-dir", env("GATEWAY_OUTBOX_DIR", app.DefaultOutboxDir), "directory of the durable event outbox (env GATEWAY_OUTBOX_DIR)")
		outboxDelay       = fs.Duration("outbox-commit-delay", envDuration("GATEWAY_OUTBOX_COMMIT_DELAY", app.DefaultOutboxCommitDelay), "how long the outbox waits to group concurrent events into one fsync; a lone request is never delayed (env GATEWAY_OUTBOX_COMMIT_DELAY)")
		outboxSync        = fs.String("outbox-sync", env("GATEWAY_OUTBOX_SYNC", app.OutboxSyncAlways), "outbox sync policy: always (fdatasync before answering; survives power loss) or interval (fdatasync every -outbox-sync-interval; survives a process crash, may lose that interval on power loss) (env GATEWAY_OUTBOX_SYNC)")
		outboxSyncEvery   = fs.Duration("outbox-sync-interval", envDuration("GATEWAY_OUTBOX_SYNC_INTERVAL", app.DefaultOutboxSyncInterval), "how often the outbox syncs under -outbox-sync=interval (env GATEWAY_OUTBOX_SYNC_INTERVAL)")
		outboxMaxBytes    = fs.Int64("outbox-max-bytes", envInt("GATEWAY_OUTBOX_MAX_BYTES", outbox.DefaultMaxBytes), "cap on events waiting for Kafka; at the cap mutations get 503 (env GATEWAY_OUTBOX_MAX_BYTES)")
		eventFormat       = fs.String("event-format", env("GATEWAY_EVENT_FORMAT", string(events.FormatJSON)), "event data encoding: json or protobuf (env GATEWAY_EVENT_FORMAT)")
		eventSource       = fs.String("event-source", env("GATEWAY_EVENT_SOURCE", events.DefaultSource), "CloudEvents source of the events (env GATEWAY_EVENT_SOURCE)")
		idempotencyWindow = fs.Duration("idempotency-window", envDuration("GATEWAY_IDEMPOTENCY_WINDOW", events.DefaultIdempotencyWindow), "how long a mutation's response is replayed for a repeated Idempotency-Key (env GATEWAY_IDEMPOTENCY_WINDOW)")
	)
	if err := fs.Parse(args); err != nil {
		return err
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
	commitDelay := *outboxDelay
	if commitDelay == 0 {
		commitDelay = -1 // EventsConfig's value for "commit at once"; its 0 is the default
	}
	log, logOut, err := newLogger(os.Stderr, *logFormat, *logLevel, *logFlush)
	if err != nil {
		return err
	}
	defer logOut.Close()
	cfg := app.Config{
		HTTPAddr:         *httpAddr,
		GRPCAddr:         *grpcAddr,
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
			Topics:             topics,
			Partitions:         int32(*kafkaPartitions),
			Replication:        int16(*kafkaReplication),
			IdempotencyWindow:  *idempotencyWindow,
		},
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
