package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// logBuffer collects log output for counting messages.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many records were logged with message msg.
func (l *logBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), fmt.Sprintf("msg=%q", msg))
}

// expect checks how many times each message was logged.
func (l *logBuffer) expect(tb testing.TB, counts map[string]int) {
	tb.Helper()
	for msg, want := range counts {
		if got := l.count(msg); got != want {
			tb.Errorf("logged %q %d times, want %d\n%s", msg, got, want, l)
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// newTestOutbox opens an outbox holding n test records.
func newTestOutbox(tb testing.TB, n int) *outbox.Outbox {
	tb.Helper()
	ob, err := outbox.Open(tb.TempDir(), outbox.Options{NoSync: true})
	if err != nil {
		tb.Fatalf("outbox.Open: %v", err)
	}
	tb.Cleanup(func() { _ = ob.Close() })
	appendRecords(tb, ob, 0, n)
	return ob
}

func testRecord(i int) outbox.Record {
	s := fmt.Sprint(i)
	return outbox.Record{
		Topic:   "shop.test.v1",
		Key:     []byte("user-" + fmt.Sprint(i%5)),
		Headers: []outbox.Header{{Key: []byte("ce_id"), Value: []byte("event-" + s)}},
		Value:   []byte("value-" + s),
	}
}

func appendRecords(tb testing.TB, ob *outbox.Outbox, first, n int) {
	tb.Helper()
	for i := first; i < first+n; i++ {
		if _, err := ob.Append(context.Background(), testRecord(i)); err != nil {
			tb.Fatalf("Append: %v", err)
		}
	}
}

// testConfig is a config with quick backoff for tests against fakes.
func testConfig(log *slog.Logger) Config {
	return Config{
		Brokers:      []string{"fake:9092"},
		MinBackoff:   time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
		CloseTimeout: 2 * time.Second,
		Logger:       log,
	}
}

// newTestRelay builds a relay whose dials come from dials in turn (the
// last one repeats), and runs it until the test ends.
func newTestRelay(tb testing.TB, cfg Config, ob *outbox.Outbox, dials ...func() (*conn, error)) *Relay {
	tb.Helper()
	r, err := New(cfg, ob)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	var n atomic.Int64
	r.dial = func() (*conn, error) {
		i := int(n.Add(1)) - 1
		return dials[min(i, len(dials)-1)]()
	}
	runUntilCleanup(tb, r)
	return r
}

// runUntilCleanup runs r until the test ends, then closes it and checks
// that Run returned nil.
func runUntilCleanup(tb testing.TB, r *Relay) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
}

func connTo(p sarama.AsyncProducer) func() (*conn, error) {
	return func() (*conn, error) {
		return &conn{producer: p, close: func() error { return nil }}, nil
	}
}

// kafkaSwitch is a fake Kafka that a test turns on and off.
type kafkaSwitch struct {
	mu sync.Mutex
	up bool
}

func (k *kafkaSwitch) set(up bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.up = up
}

func (k *kafkaSwitch) isUp() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.up
}

var errDialRefused = errors.New("dial tcp 127.0.0.1:9092: connect: connection refused")

func refuse() (*conn, error) { return nil, errDialRefused }

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeProducer hands every input to the test and lets it decide when and
// in which order to confirm.
type fakeProducer struct {
	sarama.AsyncProducer // nil: the methods the relay does not use
	input                chan *sarama.ProducerMessage
	successes            chan *sarama.ProducerMessage
	errors               chan *sarama.ProducerError
	closed               chan struct{}
	closeOnce            sync.Once
}

// newFakeProducer returns a producer that the test drives; it ends (closes
// its output channels) when asked to close, unless the test calls
// newHeldProducer to end it itself.
func newFakeProducer() *fakeProducer {
	f := newHeldProducer()
	go func() { <-f.closed; f.finish() }()
	return f
}

func newHeldProducer() *fakeProducer {
	return &fakeProducer{
		input:     make(chan *sarama.ProducerMessage, 1024),
		successes: make(chan *sarama.ProducerMessage, 1024),
		errors:    make(chan *sarama.ProducerError, 1024),
		closed:    make(chan struct{}),
	}
}

func (f *fakeProducer) Input() chan<- *sarama.ProducerMessage     { return f.input }
func (f *fakeProducer) Successes() <-chan *sarama.ProducerMessage { return f.successes }
func (f *fakeProducer) Errors() <-chan *sarama.ProducerError      { return f.errors }
func (f *fakeProducer) AsyncClose()                               { f.closeOnce.Do(func() { close(f.closed) }) }
func (f *fakeProducer) Close() error                              { f.AsyncClose(); return nil }
func (f *fakeProducer) finish()                                   { close(f.successes); close(f.errors) }
func (f *fakeProducer) take(tb testing.TB) *sarama.ProducerMessage {
	tb.Helper()
	return takeFrom(tb, f.input)
}

func takeFrom(tb testing.TB, ch <-chan *sarama.ProducerMessage) *sarama.ProducerMessage {
	tb.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		tb.Fatal("no message reached the producer")
		return nil
	}
}

func idOf(m *sarama.ProducerMessage) outbox.ID { id, _ := m.Metadata.(outbox.ID); return id }
