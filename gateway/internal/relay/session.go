package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// session publishes with one producer until it fails or ctx ends. On the
// way out it closes the producer, acking whatever the brokers still confirm,
// and rewinds the outbox to the last ack so that the next session sends
// everything unconfirmed again. It returns nil when ctx ended.
func (r *Relay) session(ctx context.Context, c *conn) error {
	s := &sessionState{
		r:     r,
		p:     c.producer,
		win:   newWindow(r.ob.Stats().AckedID + 1),
		slots: make(chan struct{}, r.cfg.MaxInFlight),
		spans: newPublishSpans(r.cfg.Tracer),
	}
	defer s.spans.endAll(errUnconfirmed)
	if r.ob.Stats().Depth == 0 {
		// Nothing to prove the link with: the dial itself did.
		r.setUp()
	}

	feedCtx, stopFeed := context.WithCancel(context.Background())
	feedDone := make(chan struct{})
	feedErr := make(chan error, 1)
	go func() {
		defer close(feedDone)
		if err := s.feed(feedCtx); err != nil && feedCtx.Err() == nil {
			feedErr <- err
		}
	}()

	failure := s.run(ctx, c, feedErr)
	stopFeed()
	<-feedDone
	return r.endSession(ctx, s, c, failure)
}

var errProducerGone = errors.New("relay: producer stopped unexpectedly")

// sessionState is what one session's goroutines share.
type sessionState struct {
	r   *Relay
	p   sarama.AsyncProducer
	win *window // main loop only
	// slots holds one token per record past the watermark, bounding them
	// to MaxInFlight; the main loop frees tokens as the watermark moves.
	slots chan struct{}
	// draining is set once the session is winding down (main loop only).
	draining bool
	// spans are the producer spans of records in flight; nil without a
	// tracer.
	spans *publishSpans
}

var errUnconfirmed = errors.New("relay: record not confirmed before the session ended")

// failed ends the span of a record the producer could not publish.
func (s *sessionState) failed(pe *sarama.ProducerError) {
	if pe.Msg != nil {
		if id, ok := pe.Msg.Metadata.(outbox.ID); ok {
			s.spans.end(id, pe.Err)
		}
	}
}

// feed reads the outbox and hands records to the producer, in id order.
func (s *sessionState) feed(ctx context.Context) error {
	for {
		es, err := s.r.ob.Next(ctx, s.r.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("relay: read outbox: %w", err)
		}
		for i := range es {
			select {
			case s.slots <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			s.r.inFlight.Add(1)
			m := toMessage(&es[i])
			s.spans.start(m, es[i].ID)
			select {
			case s.p.Input() <- m:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// succeeded moves the watermark for a confirmed record and acks the outbox
// up to it.
func (s *sessionState) succeeded(m *sarama.ProducerMessage) error {
	id, ok := m.Metadata.(outbox.ID)
	if !ok {
		return fmt.Errorf("relay: producer returned a message without an outbox id")
	}
	s.spans.end(id, nil)
	before := s.win.watermark()
	wm, advanced := s.win.complete(id)
	if !advanced {
		return nil
	}
	if err := s.r.ob.Ack(wm); err != nil {
		return fmt.Errorf("relay: ack outbox: %w", err)
	}
	n := int(wm - before)
	s.r.inFlight.Add(-int64(n))
	for range n {
		<-s.slots
	}
	if !s.draining {
		// Confirmations that trickle in after a failure are no news of
		// health.
		s.r.setUp()
	}
	return nil
}

// failureDrain bounds the wait for confirmations after a failure.
const failureDrain = 2 * time.Second

// drain closes the producer and takes in what it still confirms, for at
// most timeout. Errors reported while draining are counted, not returned
// one by one: the session is over either way.
func (s *sessionState) drain(timeout time.Duration) error {
	s.draining = true
	s.p.AsyncClose()
	succ, errs := s.p.Successes(), s.p.Errors()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var first error
	failed := 0
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			if err := s.succeeded(m); err != nil && first == nil {
				first = err
			}
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			failed++
			s.failed(pe)
			if first == nil {
				first = publishError(pe)
			}
		case <-t.C:
			s.r.log.Warn("kafka producer did not flush in time, unconfirmed records will be sent again",
				slog.Duration("timeout", timeout), slog.Int64("in_flight", s.r.inFlight.Load()))
			// The producer still has to be drained for its goroutines to
			// finish; what it confirms now is sent again anyway.
			go func() {
				for range succ {
				}
			}()
			go func() {
				for range errs {
				}
			}()
			return errors.New("relay: producer did not flush in time")
		}
	}
	if failed > 1 {
		s.r.log.Debug("kafka producer failed records while closing", slog.Int("records", failed))
	}
	return first
}

func publishError(pe *sarama.ProducerError) error {
	if pe.Msg == nil {
		return fmt.Errorf("relay: publish: %w", pe.Err)
	}
	return fmt.Errorf("relay: publish record %v to %s: %w", pe.Msg.Metadata, pe.Msg.Topic, pe.Err)
}

// toMessage maps an outbox entry 1:1 onto a Kafka message. The outbox id
// rides along as Metadata to find the record again on acknowledgement.
func toMessage(e *outbox.Entry) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: e.Topic, Timestamp: e.Time, Metadata: e.ID}
	if e.Key != nil {
		m.Key = sarama.ByteEncoder(e.Key)
	}
	if e.Value != nil {
		m.Value = sarama.ByteEncoder(e.Value)
	}
	if len(e.Headers) > 0 {
		m.Headers = make([]sarama.RecordHeader, len(e.Headers))
		for i, h := range e.Headers {
			m.Headers[i] = sarama.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// run confirms what the producer publishes and probes the link until the
// producer, the feed or a probe fails (the failure) or ctx ends (nil).
func (s *sessionState) run(ctx context.Context, c *conn, feedErr <-chan error) error {
	var probe <-chan time.Time
	if c.probe != nil && s.r.cfg.ProbeEvery > 0 {
		t := time.NewTicker(s.r.cfg.ProbeEvery)
		defer t.Stop()
		probe = t.C
	}
	probeRes := make(chan error, 1)
	probing := false

	var failure error
loop:
	for {
		select {
		case m, ok := <-s.p.Successes():
			if !ok {
				failure = errProducerGone
				break loop
			}
			if err := s.succeeded(m); err != nil {
				failure = err
				break loop
			}
		case pe, ok := <-s.p.Errors():
			if !ok {
				failure = errProducerGone
				break loop
			}
			failure = publishError(pe)
			s.failed(pe)
			break loop
		case err := <-feedErr:
			failure = err
			break loop
		case <-probe:
			if !probing {
				probing = true
				go func() { probeRes <- c.probe() }()
			}
		case err := <-probeRes:
			probing = false
			if err != nil {
				failure = fmt.Errorf("relay: kafka metadata: %w", err)
				break loop
			}
			if s.r.inFlight.Load() == 0 {
				s.r.setUp()
			}
		case <-ctx.Done():
			break loop
		}
	}
	return failure
}

// endSession closes a session: the outage reported after a failure, the
// producer drained, the client closed, the outbox rewound to the first
// unconfirmed event so that the next session sends it again.
func (r *Relay) endSession(ctx context.Context, s *sessionState, c *conn, failure error) error {
	// On a stop the producer gets the whole CloseTimeout to flush. After a
	// failure the outage is reported first, and the wait is short: the
	// confirmations still worth waiting for (other partitions) come fast,
	// and what is unconfirmed is sent again anyway.
	timeout := r.cfg.CloseTimeout
	if failure != nil {
		r.setDown(failure)
		timeout = min(timeout, failureDrain)
	}
	if err := s.drain(timeout); err != nil && failure == nil && ctx.Err() == nil {
		failure = err
	}
	if err := c.close(); err != nil {
		r.log.Debug("relay: closing kafka client", slog.Any("error", err))
	}
	r.inFlight.Store(0)
	if err := r.ob.Rewind(); err != nil && !errors.Is(err, outbox.ErrClosed) {
		return fmt.Errorf("relay: rewind outbox: %w", err)
	}
	if ctx.Err() != nil && failure == nil {
		return nil
	}
	return failure
}
