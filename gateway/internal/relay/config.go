package relay

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for Config, applied by New to every zero field.
const (
	// DefaultClientID is the client id the producer presents to brokers.
	DefaultClientID = "shop-gateway"
	// DefaultMinBackoff is the first wait after a failure.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff caps the wait between attempts.
	DefaultMaxBackoff = 10 * time.Second
	// DefaultBatchSize is how many records one outbox read returns at most.
	DefaultBatchSize = 500
	// DefaultMaxInFlight bounds the records sent but not yet acked.
	DefaultMaxInFlight = 10_000
	// DefaultProbeEvery is the interval of the idle connection check.
	DefaultProbeEvery = 5 * time.Second
	// DefaultCloseTimeout bounds the flush on Close.
	DefaultCloseTimeout = 10 * time.Second
)

// TopicSpec describes a topic the relay creates at start-up when it is
// missing. An existing topic is left as it is.
type TopicSpec struct {
	// Name of the topic. Required.
	Name string
	// Partitions of a created topic. Default 1.
	Partitions int32
	// ReplicationFactor of a created topic. Default 1; -1 leaves it to the
	// broker's default.replication.factor.
	ReplicationFactor int16
}

// Config configures a Relay. Zero fields take the default named in their
// comment; Brokers is required.
type Config struct {
	// Brokers are the bootstrap addresses, "host:port". Required.
	Brokers []string
	// ClientID names the producer to the brokers. Default "shop-gateway".
	ClientID string
	// Topics are created when missing, before anything is published, and
	// again on every reconnection. The producer never auto-creates a topic
	// (that would take the broker's default partition count), so a record
	// for a topic that is neither listed here nor created otherwise fails
	// and is retried, holding up the records behind it, until the topic
	// exists. Default none.
	Topics []TopicSpec
	// MinBackoff is the first wait after Kafka turned out unreachable or a
	// publish failed. Default 100ms.
	MinBackoff time.Duration
	// MaxBackoff caps the exponentially growing wait. Default 10s.
	MaxBackoff time.Duration
	// BatchSize is how many records the relay reads from the outbox at a
	// time. Default 500.
	BatchSize int
	// MaxInFlight bounds the records handed to the producer past the acked
	// prefix: the most a failure makes the relay send again. Default 10,000.
	MaxInFlight int
	// ProbeEvery is how often the relay checks the connection by refreshing
	// metadata, so that an idle relay notices an outage. Default 5s.
	ProbeEvery time.Duration
	// CloseTimeout bounds how long Close waits for records in flight to be
	// acknowledged. Default 10s.
	CloseTimeout time.Duration
	// Compression of produced batches. Default sarama.CompressionNone.
	Compression sarama.CompressionCodec
	// Tracer, when set, puts the publication of each record that carries a
	// traceparent header in a producer span, a child of that context, ended
	// when the broker confirms the record, and sends the span's context as
	// the record's traceparent, so that consumers continue the request's
	// trace. Default: no spans, headers sent as stored.
	Tracer trace.Tracer
	// Logger receives the relay's state changes. Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.ClientID = cmp.Or(c.ClientID, DefaultClientID)
	for i := range c.Topics {
		if c.Topics[i].Partitions == 0 {
			c.Topics[i].Partitions = 1
		}
		if c.Topics[i].ReplicationFactor == 0 {
			c.Topics[i].ReplicationFactor = 1
		}
	}
	c.MinBackoff = cmp.Or(c.MinBackoff, DefaultMinBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, DefaultMaxInFlight)
	c.ProbeEvery = cmp.Or(c.ProbeEvery, DefaultProbeEvery)
	c.CloseTimeout = cmp.Or(c.CloseTimeout, DefaultCloseTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once. New calls it after applying
// the defaults.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("Brokers is empty"))
	}
	for _, t := range c.Topics {
		if t.Name == "" {
			errs = append(errs, errors.New("a topic has no name"))
		}
		if t.Partitions < 1 {
			errs = append(errs, fmt.Errorf("topic %q: Partitions %d is below 1", t.Name, t.Partitions))
		}
		if t.ReplicationFactor < -1 {
			errs = append(errs, fmt.Errorf("topic %q: ReplicationFactor %d is below -1", t.Name, t.ReplicationFactor))
		}
	}
	if c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("backoff %s..%s is not a range", c.MinBackoff, c.MaxBackoff))
	}
	if c.BatchSize < 1 || c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("BatchSize %d and MaxInFlight %d must be positive", c.BatchSize, c.MaxInFlight))
	}
	if c.ProbeEvery < 0 || c.CloseTimeout < 0 {
		errs = append(errs, errors.New("ProbeEvery and CloseTimeout must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: invalid config: %w", err)
	}
	if err := newSaramaConfig(c).Validate(); err != nil {
		return fmt.Errorf("relay: invalid config: %w", err)
	}
	return nil
}

// newSaramaConfig is the one place the producer's settings are chosen.
//
// Idempotence with acks from all in-sync replicas and one request in flight
// per broker gives ordered, duplicate-free retries within a producer
// session; the relay rebuilds the producer after a failure and re-sends
// from the last ack, which is where duplicates (at-least-once) can come
// from. The murmur2 partitioner puts a key on the partition the Java client
// would, so the services' consumers and producers agree with the gateway.
// Timeouts are short enough that an outage is noticed in seconds, and
// retries are bounded so that a failure surfaces instead of hanging.
func newSaramaConfig(c *Config) *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V4_3_1_0
	sc.ClientID = c.ClientID

	sc.Net.MaxOpenRequests = 1
	sc.Net.DialTimeout = 5 * time.Second
	sc.Net.ReadTimeout = 15 * time.Second
	sc.Net.WriteTimeout = 10 * time.Second

	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.AllowAutoTopicCreation = false

	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Timeout = 10 * time.Second
	sc.Producer.Partitioner = sarama.NewMurmur2Partitioner
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 5
	sc.Producer.Retry.Backoff = 200 * time.Millisecond
	sc.Producer.Compression = c.Compression
	// Batches form while the one request in flight is out; this bounds how
	// long a record waits for company. 10ms (Kafka's own clients linger 5ms)
	// halves the relay's CPU per event under a steady trickle of mutations
	// (gwbench -events: 0.55x -> 0.73x of events off), at no cost to the
	// client, which is answered once the event is in the outbox.
	sc.Producer.Flush.Frequency = 10 * time.Millisecond
	sc.Producer.Flush.Bytes = 512 << 10
	sc.ChannelBufferSize = 1024

	sc.Admin.Timeout = 10 * time.Second
	sc.Admin.Retry.Max = 2
	return sc
}
