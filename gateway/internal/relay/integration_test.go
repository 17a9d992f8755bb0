package relay

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/tests/harness"
)

// These tests run against a real broker (scripts/kafka.sh start) named by
// KAFKA_BROKERS, comma-separated. Without it they skip, except under CI
// (CI set), where they use 127.0.0.1:9092 and fail when it is unreachable.

func kafkaBrokers(tb testing.TB) []string {
	tb.Helper()
	addrs := os.Getenv("KAFKA_BROKERS")
	if addrs == "" {
		if os.Getenv("CI") == "" {
			tb.Skip("KAFKA_BROKERS not set; run scripts/kafka.sh start and KAFKA_BROKERS=127.0.0.1:9092")
		}
		addrs = "127.0.0.1:9092"
	}
	brokers := strings.Split(addrs, ",")
	// Tests of other packages (tests/events) stop and start the shared
	// broker; hold it running for this test, as their stacks do.
	harness.HoldKafka(tb)
	sc := sarama.NewConfig()
	sc.Net.DialTimeout = 3 * time.Second
	c, err := sarama.NewClient(brokers, sc)
	if err != nil {
		tb.Fatalf("Kafka at %v unreachable: %v (start it with scripts/kafka.sh start)", brokers, err)
	}
	_ = c.Close()
	return brokers
}

// newTopic names a fresh topic and deletes it when the test ends.
func newTopic(tb testing.TB, brokers []string) string {
	tb.Helper()
	topic := "shop.relaytest." + uuid.NewString()
	tb.Cleanup(func() {
		admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
		if err != nil {
			return
		}
		_ = admin.DeleteTopic(topic)
		_ = admin.Close()
	})
	return topic
}

func integrationRecord(topic string, i int) outbox.Record {
	return outbox.Record{
		Topic: topic,
		Key:   fmt.Appendf(nil, "user-%d", i%37),
		Headers: []outbox.Header{
			{Key: []byte("ce_id"), Value: fmt.Appendf(nil, "%d", i)},
			{Key: []byte("ce_type"), Value: []byte("shop.events.v1.CartItemAdded")},
			{Key: []byte("x-null"), Value: nil},
		},
		Value: fmt.Appendf(nil, `{"seq":%d}`, i),
	}
}

// consumeAll reads every partition of topic until it has seen n distinct
// values, and returns all it read, duplicates included.
func consumeAll(tb testing.TB, brokers []string, topic string, n int) []*sarama.ConsumerMessage {
	tb.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V4_3_1_0
	consumer, err := sarama.NewConsumer(brokers, sc)
	if err != nil {
		tb.Fatalf("NewConsumer: %v", err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		tb.Fatalf("Partitions: %v", err)
	}
	var (
		mu       sync.Mutex
		out      []*sarama.ConsumerMessage
		distinct = map[string]bool{}
	)
	got := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			tb.Fatalf("ConsumePartition: %v", err)
		}
		wg.Go(func() {
			for {
				select {
				case m := <-pc.Messages():
					mu.Lock()
					out = append(out, m)
					distinct[string(m.Value)] = true
					if len(distinct) >= n {
						once.Do(func() { close(got) })
					}
					mu.Unlock()
				case <-got:
					_ = pc.Close()
					return
				}
			}
		})
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		once.Do(func() { close(got) })
		wg.Wait()
		tb.Fatalf("consumed %d distinct of %d messages (%d read)", len(distinct), n, len(out))
	}
	wg.Wait()
	return out
}

func TestIntegrationRelay(t *testing.T) {
	brokers := kafkaBrokers(t)
	t.Parallel()
	const n, partitions = 2000, 3
	topic := newTopic(t, brokers)
	ob, err := outbox.Open(t.TempDir(), outbox.Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	for i := range n {
		if _, err := ob.Append(context.Background(), integrationRecord(topic, i)); err != nil {
			t.Fatal(err)
		}
	}

	log, logs := newTestLogger()
	cfg := Config{Brokers: brokers, Topics: []TopicSpec{{Name: topic, Partitions: partitions}}, Logger: log}
	r, err := New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, r)
	waitFor(t, "the outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	if st := r.Status(); !st.Connected || st.AckedID != n {
		t.Errorf("Status = %+v, want connected and acked %d", st, n)
	}
	logs.expect(t, map[string]int{"kafka reachable, relay started": 1, "kafka topic created": 1})

	partitioner := newSaramaConfig(&r.cfg).Producer.Partitioner(topic)
	seen := make(map[string]bool, n)
	lastSeq := map[string]int{} // per key, to check order
	for _, m := range consumeAll(t, brokers, topic, n) {
		var seq int
		if _, err := fmt.Sscanf(string(m.Value), `{"seq":%d}`, &seq); err != nil {
			t.Fatalf("value %q: %v", m.Value, err)
		}
		want := integrationRecord(topic, seq)
		if string(m.Key) != string(want.Key) {
			t.Errorf("record %d: key %q, want %q", seq, m.Key, want.Key)
		}
		if len(m.Headers) != len(want.Headers) {
			t.Fatalf("record %d: %d headers, want %d", seq, len(m.Headers), len(want.Headers))
		}
		for i, h := range want.Headers {
			got := m.Headers[i]
			if string(got.Key) != string(h.Key) || string(got.Value) != string(h.Value) || (got.Value == nil) != (h.Value == nil) {
				t.Errorf("record %d: header %q=%q, want %q=%q", seq, got.Key, got.Value, h.Key, h.Value)
			}
		}
		wantPart, err := partitioner.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(want.Key)}, partitions)
		if err != nil {
			t.Fatal(err)
		}
		if m.Partition != wantPart {
			t.Errorf("record %d (key %s): partition %d, want %d (murmur2)", seq, m.Key, m.Partition, wantPart)
		}
		if prev, ok := lastSeq[string(m.Key)]; ok && seq <= prev {
			t.Errorf("key %s: record %d after %d", m.Key, seq, prev)
		}
		lastSeq[string(m.Key)] = seq
		if seen[string(m.Value)] {
			t.Errorf("record %d delivered twice without a failure", seq)
		}
		seen[string(m.Value)] = true
	}
	if got := len(seen); got != n {
		t.Errorf("%d distinct records consumed, want %d", got, n)
	}
}

// TestIntegrationStartsWithoutKafka points the relay at a door to the
// broker that stays shut at first: the relay must start, let the outbox
// fill, say once that Kafka is unavailable, and drain once the door opens.
func TestIntegrationStartsWithoutKafka(t *testing.T) {
	brokers := kafkaBrokers(t)
	t.Parallel()
	topic := newTopic(t, brokers)
	door := newDoor(t, brokers[0])

	ob, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	log, logs := newTestLogger()
	cfg := Config{
		Brokers:    []string{door.addr},
		Topics:     []TopicSpec{{Name: topic, Partitions: 2}},
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
		Logger:     log,
	}
	r, err := New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, r)

	const n = 100
	for i := range n {
		if _, err := ob.Append(context.Background(), integrationRecord(topic, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed connection", func() bool { return r.Status().LastError != "" })
	time.Sleep(500 * time.Millisecond) // several more attempts
	if st := r.Status(); st.Connected || st.Depth != n {
		t.Errorf("Status while Kafka is unreachable = %+v, want not connected and depth %d", st, n)
	}

	door.open.Store(true)
	waitFor(t, "the outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	logs.expect(t, map[string]int{
		"kafka unavailable, relay backing off": 1,
		"kafka reachable, relay resumed":       1,
	})
	if got := len(consumeAll(t, brokers, topic, n)); got < n {
		t.Errorf("consumed %d records, want %d", got, n)
	}
}

// door is a TCP proxy to a broker that drops connections while shut.
// Only bootstrapping goes through it (the broker then advertises its own
// address), which is enough to keep a new client from starting.
type door struct {
	addr string
	open atomic.Bool
}

func newDoor(tb testing.TB, target string) *door {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d := &door{addr: ln.Addr().String()}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !d.open.Load() {
				_ = c.Close()
				continue
			}
			go d.pipe(c, target)
		}
	}()
	return d
}

func (d *door) pipe(c net.Conn, target string) {
	defer c.Close()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c) }()
	_, _ = io.Copy(c, up)
}

// BenchmarkRelayDrain measures how fast the relay empties an outbox of
// 20,000 event-sized records into the real broker (3 partitions).
func BenchmarkRelayDrain(b *testing.B) {
	brokers := kafkaBrokers(b)
	const records = 20_000
	topic := newTopic(b, brokers)
	var drained int
	for range b.N {
		b.StopTimer()
		ob, err := outbox.Open(b.TempDir(), outbox.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		for i := range records {
			rec := integrationRecord(topic, i)
			rec.Value = append(rec.Value, make([]byte, 200)...) // event-sized
			if _, err := ob.Append(context.Background(), rec); err != nil {
				b.Fatal(err)
			}
		}
		r, err := New(Config{Brokers: brokers, Topics: []TopicSpec{{Name: topic, Partitions: 3}}}, ob)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.StartTimer()
		done := make(chan error, 1)
		go func() { done <- r.Run(context.Background()) }()
		for ob.Stats().Depth > 0 {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		_ = r.Close()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = ob.Close()
		drained += records
	}
	b.ReportMetric(float64(drained)/b.Elapsed().Seconds(), "events/s")
}
