// Package relay publishes the records of an outbox to Kafka with sarama's
// idempotent producer and acks them in the outbox once the brokers have
// them: at-least-once delivery, in outbox order per partition.
//
// The relay starts without Kafka and keeps trying in the background, so
// the gateway serves (and fills its outbox) while Kafka is down. It logs
// each change between reachable and unreachable once, never per record.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/cenkalti/backoff/v5"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// Relay moves records from an outbox to Kafka. Create it with New, start it
// with Run and stop it with Close (or by cancelling Run's context).
type Relay struct {
	cfg  Config
	ob   *outbox.Outbox
	log  *slog.Logger
	dial func() (*conn, error)

	running  atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	inFlight atomic.Int64

	// Run's goroutine only.
	bo *backoff.ExponentialBackOff

	mu      sync.Mutex
	state   linkState
	since   time.Time
	lastErr string
}

// conn is one connection to Kafka: a producer and what it runs on.
type conn struct {
	producer sarama.AsyncProducer
	// probe checks that the brokers still answer; nil skips probing.
	probe func() error
	// close releases what the producer ran on, after the producer closed.
	close func() error
}

type linkState int

const (
	stateStarting linkState = iota
	stateUp
	stateDown
)

// Status is a snapshot of the relay for readiness checks and metrics.
type Status struct {
	// Connected reports that Kafka answered and nothing failed since.
	Connected bool
	// Since is when Connected last changed (the zero time before the
	// first attempt finished).
	Since time.Time
	// LastError is the latest failure while not connected, "" otherwise.
	LastError string
	// Depth is the number of outbox records Kafka has not acknowledged:
	// the relay's lag, in records.
	Depth int64
	// Bytes is the size of those records in the outbox.
	Bytes int64
	// InFlight is how many records are with the producer, unacknowledged.
	InFlight int64
	// AckedID is the outbox id up to which Kafka has everything.
	AckedID outbox.ID
	// LastID is the id of the newest record in the outbox.
	LastID outbox.ID
}

// New checks cfg and returns a relay for ob. It does not connect: Run does,
// for as long as it takes.
func New(cfg Config, ob *outbox.Outbox) (*Relay, error) {
	if ob == nil {
		return nil, errors.New("relay: nil outbox")
	}
	cfg.Topics = append([]TopicSpec(nil), cfg.Topics...)
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:  cfg,
		ob:   ob,
		log:  cfg.Logger,
		stop: make(chan struct{}),
		done: make(chan struct{}),
		bo: &backoff.ExponentialBackOff{
			InitialInterval:     cfg.MinBackoff,
			RandomizationFactor: 0.2,
			Multiplier:          2,
			MaxInterval:         cfg.MaxBackoff,
		},
	}
	r.bo.Reset()
	r.dial = r.dialKafka
	return r, nil
}

// Run publishes until ctx is cancelled or Close is called, then flushes the
// records in flight (for at most Config.CloseTimeout) and returns nil. It
// returns an error only when it cannot go on: when the outbox is closed
// under it or Run was already called. Kafka being unreachable is not such
// an error: Run backs off and retries.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("relay: Run called more than once")
	}
	defer close(r.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	for {
		c, err := r.connect(ctx)
		if ctx.Err() != nil {
			r.log.Info("relay stopped", slog.Int64("depth", r.ob.Stats().Depth))
			return nil
		}
		if err == nil {
			err = r.session(ctx, c)
			if err == nil {
				r.log.Info("relay stopped", slog.Int64("depth", r.ob.Stats().Depth))
				return nil
			}
		}
		if errors.Is(err, outbox.ErrClosed) {
			return fmt.Errorf("relay: %w", err)
		}
		r.setDown(err)
		t := time.NewTimer(r.bo.NextBackOff())
		select {
		case <-ctx.Done():
			t.Stop()
			r.log.Info("relay stopped", slog.Int64("depth", r.ob.Stats().Depth))
			return nil
		case <-t.C:
		}
	}
}

// connect dials in the background so that a stop does not wait for dial
// and metadata timeouts; a connection that arrives too late is closed.
func (r *Relay) connect(ctx context.Context) (*conn, error) {
	type result struct {
		c   *conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := r.dial()
		res <- result{c, err}
	}()
	select {
	case x := <-res:
		return x.c, x.err
	case <-ctx.Done():
		go func() {
			if x := <-res; x.err == nil {
				_ = x.c.producer.Close()
				_ = x.c.close()
			}
		}()
		return nil, ctx.Err()
	}
}

// dialKafka connects to the brokers, creates the missing topics and starts
// a producer.
func (r *Relay) dialKafka() (*conn, error) {
	client, err := sarama.NewClient(r.cfg.Brokers, newSaramaConfig(&r.cfg))
	if err != nil {
		return nil, fmt.Errorf("relay: connect to %v: %w", r.cfg.Brokers, err)
	}
	if err := ensureTopics(client, r.cfg.Topics, r.log); err != nil {
		_ = client.Close()
		return nil, err
	}
	p, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("relay: start producer: %w", err)
	}
	topics := make([]string, len(r.cfg.Topics))
	for i, t := range r.cfg.Topics {
		topics[i] = t.Name
	}
	return &conn{
		producer: p,
		probe:    func() error { return client.RefreshMetadata(topics...) },
		close:    client.Close,
	}, nil
}

// Close stops Run, letting it flush the records in flight, and waits for it
// for at most Config.CloseTimeout plus a second. Close the outbox only
// after the relay. Close is idempotent and safe before Run.
func (r *Relay) Close() error {
	r.stopOnce.Do(func() { close(r.stop) })
	if !r.running.Load() {
		return nil
	}
	t := time.NewTimer(r.cfg.CloseTimeout + time.Second)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-t.C:
		return fmt.Errorf("relay: not stopped after %s", r.cfg.CloseTimeout+time.Second)
	}
}

// Status returns a snapshot of the relay.
func (r *Relay) Status() Status {
	st := r.ob.Stats()
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{
		Connected: r.state == stateUp,
		Since:     r.since,
		LastError: r.lastErr,
		Depth:     st.Depth,
		Bytes:     st.Bytes,
		InFlight:  r.inFlight.Load(),
		AckedID:   st.AckedID,
		LastID:    st.LastID,
	}
}

// setUp records that Kafka works, logging only the change. The line is
// written before Status shows the change (under the same lock), so whoever
// sees the new state finds its log line too. State changes are rare: the
// lock is not held on any request's path.
func (r *Relay) setUp() {
	r.bo.Reset()
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.state
	switch prev {
	case stateDown:
		r.log.Info("kafka reachable, relay resumed")
	case stateStarting:
		r.log.Info("kafka reachable, relay started", slog.Any("brokers", r.cfg.Brokers))
	}
	if prev != stateUp {
		r.state, r.since, r.lastErr = stateUp, time.Now(), ""
	}
}

// setDown records a failure, logging only the change (before Status shows
// it, as setUp does).
func (r *Relay) setDown(err error) {
	depth := r.ob.Stats().Depth
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.state
	r.lastErr = err.Error()
	if prev != stateDown {
		r.log.Warn("kafka unavailable, relay backing off", slog.Any("error", err), slog.Int64("depth", depth))
		r.state, r.since = stateDown, time.Now()
	}
}
