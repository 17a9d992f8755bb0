package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// expectRecords sets an expectation on p for each of records first..last
// (by outbox id, record i has id i+1) that checks the message mapping.
func expectRecords(p *mocks.AsyncProducer, first, last outbox.ID, fail map[outbox.ID]error) {
	for id := first; id <= last; id++ {
		want := testRecord(int(id) - 1)
		check := func(m *sarama.ProducerMessage) error {
			if got := idOf(m); got != id {
				return fmt.Errorf("message for record %d, want %d", got, id)
			}
			key, _ := m.Key.Encode()
			value, _ := m.Value.Encode()
			if m.Topic != want.Topic || !bytes.Equal(key, want.Key) || !bytes.Equal(value, want.Value) {
				return fmt.Errorf("record %d: got %s/%s/%s", id, m.Topic, key, value)
			}
			if len(m.Headers) != 1 || !bytes.Equal(m.Headers[0].Value, want.Headers[0].Value) {
				return fmt.Errorf("record %d: headers %v", id, m.Headers)
			}
			return nil
		}
		if err, ok := fail[id]; ok {
			p.ExpectInputWithMessageCheckerFunctionAndFail(check, err)
		} else {
			p.ExpectInputWithMessageCheckerFunctionAndSucceed(check)
		}
	}
}

func mockConfig(tb testing.TB) *sarama.Config {
	tb.Helper()
	cfg := testConfig(nil)
	cfg.setDefaults()
	return newSaramaConfig(&cfg)
}

func TestRelayDeliversEverything(t *testing.T) {
	t.Parallel()
	const n = 300
	ob := newTestOutbox(t, n)
	p := mocks.NewAsyncProducer(t, mockConfig(t))
	expectRecords(p, 1, n+20, nil)
	log, logs := newTestLogger()
	cfg := testConfig(log)
	cfg.BatchSize = 7 // many small reads
	r := newTestRelay(t, cfg, ob, connTo(p))

	waitFor(t, "the outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	// Records appended while the relay runs go out too.
	appendRecords(t, ob, n, 20)
	waitFor(t, "the outbox to drain again", func() bool { return ob.Stats().AckedID == n+20 })
	st := r.Status()
	if !st.Connected || st.Depth != 0 || st.InFlight != 0 || st.LastError != "" {
		t.Errorf("Status = %+v, want connected, nothing pending, no error", st)
	}
	logs.expect(t, map[string]int{"kafka reachable, relay started": 1})
}

// TestRelayRewindsAfterFailure fails one record: the producer is rebuilt
// and everything from the failed record on is sent again, in order.
func TestRelayRewindsAfterFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxInFlight int
		records     outbox.ID
		failAt      outbox.ID
	}{
		// With one record in flight, the first producer sees exactly the
		// records up to the failure.
		{name: "one in flight", maxInFlight: 1, records: 10, failAt: 4},
		{name: "first record", maxInFlight: 1, records: 5, failAt: 1},
		// With a window, the first producer may see any number past the
		// failure, confirmed or not; the second gets all of them again.
		{name: "window", maxInFlight: 100, records: 60, failAt: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ob := newTestOutbox(t, int(tt.records))
			failed := errors.New("kafka server: Not enough in-sync replicas")

			// The first producer fails tt.failAt; how many records after it
			// reach the producer depends on timing, so its expectations may
			// legitimately be left over.
			first := mocks.NewAsyncProducer(lenient{t}, mockConfig(t))
			expectRecords(first, 1, tt.records, map[outbox.ID]error{tt.failAt: failed})
			second := mocks.NewAsyncProducer(t, mockConfig(t))
			expectRecords(second, tt.failAt, tt.records, nil)

			log, logs := newTestLogger()
			cfg := testConfig(log)
			cfg.MaxInFlight = tt.maxInFlight
			r := newTestRelay(t, cfg, ob, connTo(first), connTo(second))

			waitFor(t, "the outbox to drain", func() bool { return ob.Stats().Depth == 0 })
			if got := r.Status(); !got.Connected {
				t.Errorf("Status.Connected = false after recovery")
			}
			logs.expect(t, map[string]int{
				"kafka unavailable, relay backing off": 1,
				"kafka reachable, relay resumed":       1,
			})
			if !strings.Contains(logs.String(), "in-sync replicas") {
				t.Errorf("the failure's cause is not in the log:\n%s", logs)
			}
		})
	}
}

// lenient reports only unexpected messages, not unused expectations.
type lenient struct{ t *testing.T }

func (l lenient) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "exhaust all expectations") {
		return
	}
	l.t.Error(msg)
}

// TestRelayStartsWithoutKafka has the first dials fail: the relay keeps
// trying, says so once, and drains once Kafka is there.
func TestRelayStartsWithoutKafka(t *testing.T) {
	t.Parallel()
	ob := newTestOutbox(t, 50)
	p := mocks.NewAsyncProducer(t, mockConfig(t))
	expectRecords(p, 1, 50, nil)

	var kafka kafkaSwitch
	dial := func() (*conn, error) {
		if !kafka.isUp() {
			return refuse()
		}
		return connTo(p)()
	}
	log, logs := newTestLogger()
	r := newTestRelay(t, testConfig(log), ob, dial)

	waitFor(t, "a failed dial", func() bool { return r.Status().LastError != "" })
	time.Sleep(30 * time.Millisecond) // several more failed dials
	st := r.Status()
	if st.Connected || !strings.Contains(st.LastError, "connection refused") || st.Depth != 50 {
		t.Errorf("Status while Kafka is down = %+v, want not connected, the dial error, depth 50", st)
	}
	if err := ob.Admit(); err != nil {
		t.Errorf("outbox Admit while Kafka is down = %v, want nil", err)
	}

	kafka.set(true)
	waitFor(t, "the outbox to drain", func() bool { return ob.Stats().Depth == 0 })
	logs.expect(t, map[string]int{
		"kafka unavailable, relay backing off": 1,
		"kafka reachable, relay resumed":       1,
		"kafka reachable, relay started":       0,
	})
}

// TestRelayAcksOnlyContiguousPrefix confirms records out of order, as
// different partitions do: the outbox ack never skips an unconfirmed one.
func TestRelayAcksOnlyContiguousPrefix(t *testing.T) {
	t.Parallel()
	ob := newTestOutbox(t, 4)
	p := newFakeProducer()
	newTestRelay(t, testConfig(nil), ob, connTo(p))

	msgs := map[outbox.ID]*sarama.ProducerMessage{}
	for range 4 {
		m := p.take(t)
		msgs[idOf(m)] = m
	}
	steps := []struct {
		confirm outbox.ID
		wantAck outbox.ID
	}{
		{confirm: 3, wantAck: 0},
		{confirm: 2, wantAck: 0},
		{confirm: 1, wantAck: 3},
		{confirm: 4, wantAck: 4},
	}
	for _, s := range steps {
		p.successes <- msgs[s.confirm]
		if s.wantAck == ob.Stats().AckedID {
			time.Sleep(20 * time.Millisecond) // give a wrong ack time to show
		}
		waitFor(t, fmt.Sprintf("ack %d after confirming %d", s.wantAck, s.confirm), func() bool {
			return ob.Stats().AckedID == s.wantAck
		})
	}
}

// TestRelayCloseFlushes closes the relay with records in flight: Close
// waits for the producer to confirm them and acks them.
func TestRelayCloseFlushes(t *testing.T) {
	t.Parallel()
	const n = 20
	ob := newTestOutbox(t, n)
	p := newHeldProducer()
	r, err := New(testConfig(nil), ob)
	if err != nil {
		t.Fatal(err)
	}
	r.dial = connTo(p)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()

	var held []*sarama.ProducerMessage
	for range n {
		held = append(held, p.take(t))
	}
	// Confirm what is held only once the producer is asked to close.
	go func() {
		<-p.closed
		for _, m := range held {
			p.successes <- m
		}
		p.finish()
	}()
	if got := ob.Stats().AckedID; got != 0 {
		t.Fatalf("AckedID before Close = %d, want 0", got)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := ob.Stats().AckedID; got != n {
		t.Errorf("AckedID after Close = %d, want %d", got, n)
	}
}

// TestRelayCloseBounded has a producer that never confirms: Close still
// returns within its bound and nothing is acked.
func TestRelayCloseBounded(t *testing.T) {
	t.Parallel()
	ob := newTestOutbox(t, 3)
	p := newHeldProducer()
	cfg := testConfig(nil)
	cfg.CloseTimeout = 50 * time.Millisecond
	r, err := New(cfg, ob)
	if err != nil {
		t.Fatal(err)
	}
	r.dial = connTo(p)
	go func() { _ = r.Run(context.Background()) }()
	p.take(t)
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > cfg.CloseTimeout+time.Second {
		t.Errorf("Close took %s, bound %s", d, cfg.CloseTimeout+time.Second)
	}
	if got := ob.Stats().AckedID; got != 0 {
		t.Errorf("AckedID = %d, want 0", got)
	}
	p.finish()
}

// TestRelayProbeNoticesOutage fails the idle probe: the relay reports the
// outage once, however many probes and dials fail after it.
func TestRelayProbeNoticesOutage(t *testing.T) {
	t.Parallel()
	ob := newTestOutbox(t, 0)
	probeErr := errors.New("kafka: client has run out of available brokers to talk to")
	var kafka kafkaSwitch
	kafka.set(true)
	dial := func() (*conn, error) {
		if !kafka.isUp() {
			return refuse()
		}
		p := newFakeProducer()
		return &conn{
			producer: p,
			probe: func() error {
				if !kafka.isUp() {
					return probeErr
				}
				return nil
			},
			close: func() error { return nil },
		}, nil
	}
	log, logs := newTestLogger()
	cfg := testConfig(log)
	cfg.ProbeEvery = 2 * time.Millisecond
	r := newTestRelay(t, cfg, ob, dial)
	waitFor(t, "connected", func() bool { return r.Status().Connected })

	kafka.set(false)
	waitFor(t, "the outage to show", func() bool { return !r.Status().Connected })
	time.Sleep(30 * time.Millisecond)
	kafka.set(true)
	waitFor(t, "reconnected", func() bool { return r.Status().Connected })
	logs.expect(t, map[string]int{
		"kafka reachable, relay started":       1,
		"kafka unavailable, relay backing off": 1,
		"kafka reachable, relay resumed":       1,
	})
}

func TestToMessage(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 5)
	tests := []struct {
		name string
		e    outbox.Entry
	}{
		{name: "full", e: outbox.Entry{ID: 9, Time: at, Record: outbox.Record{
			Topic: "t", Key: []byte("k"), Value: []byte("v"),
			Headers: []outbox.Header{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b")}},
		}}},
		{name: "nil key and tombstone", e: outbox.Entry{ID: 1, Time: at, Record: outbox.Record{Topic: "t"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := toMessage(&tt.e)
			if m.Topic != tt.e.Topic || !m.Timestamp.Equal(at) || idOf(m) != tt.e.ID {
				t.Errorf("topic, time, id = %s, %s, %d; want %s, %s, %d", m.Topic, m.Timestamp, idOf(m), tt.e.Topic, at, tt.e.ID)
			}
			if got, want := m.Key == nil, tt.e.Key == nil; got != want {
				t.Errorf("nil key = %t, want %t", got, want)
			}
			if got, want := m.Value == nil, tt.e.Value == nil; got != want {
				t.Errorf("nil value = %t, want %t", got, want)
			}
			if got, want := len(m.Headers), len(tt.e.Headers); got != want {
				t.Fatalf("%d headers, want %d", got, want)
			}
			for i, h := range tt.e.Headers {
				if !bytes.Equal(m.Headers[i].Key, h.Key) || !bytes.Equal(m.Headers[i].Value, h.Value) || (m.Headers[i].Value == nil) != (h.Value == nil) {
					t.Errorf("header %d = %q:%q, want %q:%q", i, m.Headers[i].Key, m.Headers[i].Value, h.Key, h.Value)
				}
			}
		})
	}
}
