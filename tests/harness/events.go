package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// The gateway's event topics, as it names them by default (the topics the
// protos' shop.annotations.v1.emits options declare; the README's API table).
const (
	TopicStock = "shop.stock.v1"
	TopicCart  = "shop.cart.v1"
	TopicOrder = "shop.order.v1"
)

// Event is one Kafka record read back by an EventReader.
type Event struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	// Headers maps each record header to its value (the last one wins when
	// a name repeats).
	Headers map[string]string
	Value   []byte
	// Time is the record's timestamp.
	Time time.Time
}

// Type is the event's ce_type header, the payload's full message name.
func (e Event) Type() string { return e.Headers["ce_type"] }

// String describes the event for test failure messages.
func (e Event) String() string {
	return fmt.Sprintf("%s/%d@%d key=%q type=%q id=%q value=%s",
		e.Topic, e.Partition, e.Offset, e.Key, e.Headers["ce_type"], e.Headers["ce_id"], e.Value)
}

// EventReader reads every record appended to its topics after it was
// created: it records each partition's end offset at creation and consumes
// every partition from there in the background (no consumer group), until
// the test's cleanup.
type EventReader struct {
	tb     testing.TB
	client sarama.Client
	cons   sarama.Consumer

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on each new event
	errs    []error

	stop chan struct{} // closed at cleanup
	wg   sync.WaitGroup
}

// kafkaConfig is the sarama configuration of the harness's clients.
func kafkaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_3_1_0
	cfg.ClientID = "shop-harness"
	cfg.Net.DialTimeout = 3 * time.Second
	cfg.Net.ReadTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 2
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	// Reading must not create topics: the gateway creates its own with the
	// partitions it wants, and the broker's default is one.
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Fetch.Default = 1 << 20
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	return cfg
}

// pingBroker returns nil when a broker of addrs answers a metadata request
// within timeout.
func pingBroker(addrs []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c sarama.Client
		if c, err = sarama.NewClient(addrs, kafkaConfig()); err == nil {
			_, err = c.Topics()
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return err
}

// deleteTopics deletes topics, best effort: the stacks' private sync topics
// would otherwise pile up on a developer's broker.
func deleteTopics(topics ...string) error {
	admin, err := sarama.NewClusterAdmin(Brokers(), kafkaConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	var errs []error
	for _, t := range topics {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// NewEventReader starts reading topics (the gateway's are "shop.stock.v1",
// "shop.cart.v1" and "shop.order.v1") from their current end. It does not
// create topics: one that does not exist yet is read from its beginning as
// soon as it appears (whoever creates it decides its partitions). It fails
// tb when the broker does not answer; the reader stops at tb's cleanup.
func NewEventReader(tb testing.TB, topics ...string) *EventReader {
	tb.Helper()
	HoldKafka(tb)
	// Retried for a while: a broker restarted by something outside the
	// harness (a Python outage test, a developer) is back within seconds.
	var client sarama.Client
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if client, err = sarama.NewClient(Brokers(), kafkaConfig()); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		tb.Fatalf("harness: event reader: kafka client: %v", err)
	}
	r := &EventReader{tb: tb, client: client, changed: make(chan struct{}), stop: make(chan struct{})}
	tb.Cleanup(r.close)
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		tb.Fatalf("harness: event reader: consumer: %v", err)
	}
	r.cons = cons
	var missing []string
	for _, topic := range topics {
		parts, err := r.partitions(topic, 15*time.Second)
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			missing = append(missing, topic)
			continue
		}
		if err != nil {
			tb.Fatalf("harness: event reader: partitions of %s: %v", topic, err)
		}
		for _, p := range parts {
			off, err := endOffset(client, topic, p)
			if err != nil {
				tb.Fatalf("harness: event reader: end offset of %s/%d: %v", topic, p, err)
			}
			if err := r.consume(topic, p, off); err != nil {
				tb.Fatalf("harness: event reader: %v", err)
			}
		}
	}
	if len(missing) > 0 {
		r.wg.Add(1)
		go r.watch(missing)
	}
	return r
}

func (r *EventReader) consume(topic string, partition int32, offset int64) error {
	pc, err := r.cons.ConsumePartition(topic, partition, offset)
	if err != nil {
		return fmt.Errorf("consume %s/%d from %d: %w", topic, partition, offset, err)
	}
	go r.read(pc)
	return nil
}

// watch polls for topics that did not exist when the reader was created
// and reads each from its beginning once it exists.
func (r *EventReader) watch(topics []string) {
	defer r.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for len(topics) > 0 {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		var still []string
		for _, topic := range topics {
			parts, err := r.partitions(topic, 0)
			if err != nil {
				still = append(still, topic)
				continue
			}
			for _, p := range parts {
				if err := r.consume(topic, p, sarama.OffsetOldest); err != nil {
					r.addErr(err)
				}
			}
		}
		topics = still
	}
}

// partitions waits up to timeout until topic has a leader for every
// partition. A topic the broker does not know is reported at once, as
// sarama.ErrUnknownTopicOrPartition.
func (r *EventReader) partitions(topic string, timeout time.Duration) ([]int32, error) {
	deadline := time.Now().Add(timeout)
	for {
		err := r.client.RefreshMetadata(topic)
		var parts []int32
		if err == nil {
			parts, err = r.client.Partitions(topic)
		}
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return nil, err
		}
		if err == nil && len(parts) > 0 {
			ok := true
			for _, p := range parts {
				if _, lerr := r.client.Leader(topic, p); lerr != nil {
					ok = false
					err = lerr
				}
			}
			if ok {
				return parts, nil
			}
		}
		if err == nil {
			err = errors.New("no partitions yet")
		}
		if !time.Now().Before(deadline) {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *EventReader) addErr(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *EventReader) read(pc sarama.PartitionConsumer) {
	msgs, errs := pc.Messages(), pc.Errors()
	for msgs != nil || errs != nil {
		select {
		case m, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			ev := Event{
				Topic:     m.Topic,
				Partition: m.Partition,
				Offset:    m.Offset,
				Key:       string(m.Key),
				Headers:   make(map[string]string, len(m.Headers)),
				Value:     m.Value,
				Time:      m.Timestamp,
			}
			for _, h := range m.Headers {
				ev.Headers[string(h.Key)] = string(h.Value)
			}
			r.mu.Lock()
			r.events = append(r.events, ev)
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.addErr(err)
		}
	}
}

func (r *EventReader) close() {
	close(r.stop)
	r.wg.Wait()
	if r.cons != nil {
		r.cons.Close() // closes the partition consumers, ending read
	}
	r.client.Close()
}

// Events returns a copy of the events read so far, in arrival order
// (ordered by offset within a partition).
func (r *EventReader) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// endOffset is the next offset of a partition. A topic created a moment
// ago may not have its leader yet (or the client's metadata may predate
// it): that is retried with fresh metadata for up to 15 s.
func endOffset(client sarama.Client, topic string, partition int32) (int64, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		off, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
		if err == nil || time.Now().After(deadline) ||
			!(errors.Is(err, sarama.ErrNotLeaderForPartition) || errors.Is(err, sarama.ErrLeaderNotAvailable)) {
			return off, err
		}
		time.Sleep(200 * time.Millisecond)
		_ = client.RefreshMetadata(topic)
	}
}

// Collect waits until until returns true for the events read so far (all
// of them since the reader was created, in arrival order), and returns
// them. When ctx ends first it returns the events so far and ctx's error.
// A nil until waits for ctx.
func (r *EventReader) Collect(ctx context.Context, until func([]Event) bool) ([]Event, error) {
	for {
		r.mu.Lock()
		evs := append([]Event(nil), r.events...)
		changed := r.changed
		r.mu.Unlock()
		if until != nil && until(evs) {
			return evs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return evs, ctx.Err()
		}
	}
}

// WaitFor waits up to timeout until at least n events have been read and
// returns all of them; it fails tb, listing what it read, when fewer came.
func (r *EventReader) WaitFor(tb testing.TB, n int, timeout time.Duration) []Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	evs, err := r.Collect(ctx, func(evs []Event) bool { return len(evs) >= n })
	if err != nil {
		tb.Fatalf("harness: read %d events within %v, want at least %d (consumer errors: %v):\n%s",
			len(evs), timeout, n, r.consumerErrors(), describe(evs))
	}
	return evs
}

// WaitMatching waits up to timeout until at least n of the events read
// satisfy match, and returns those; it fails tb, listing every event read,
// when fewer came. Use it to pick one stack's events off the shared topics.
func (r *EventReader) WaitMatching(tb testing.TB, n int, timeout time.Duration, match func(Event) bool) []Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []Event
	evs, err := r.Collect(ctx, func(evs []Event) bool {
		got = Filter(evs, match)
		return len(got) >= n
	})
	if err != nil {
		tb.Fatalf("harness: %d matching events within %v, want at least %d (consumer errors: %v); read:\n%s",
			len(Filter(evs, match)), timeout, n, r.consumerErrors(), describe(evs))
	}
	return got
}

// Filter returns the events for which match is true.
func Filter(evs []Event, match func(Event) bool) []Event {
	var out []Event
	for _, e := range evs {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

func (r *EventReader) consumerErrors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func describe(evs []Event) string {
	if len(evs) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  ")
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}
