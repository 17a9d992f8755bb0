package relay

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// TraceparentHeader is the record header of the W3C trace context that the
// relay continues: the CloudEvents distributed-tracing extension's, as the
// events package writes it.
const TraceparentHeader = "ce_traceparent"

// publishSpans are the producer spans of the records in flight, by outbox
// id. The feed starts them; the session's loop ends them.
type publishSpans struct {
	tracer trace.Tracer
	mu     sync.Mutex
	spans  map[outbox.ID]trace.Span
}

func newPublishSpans(tracer trace.Tracer) *publishSpans {
	if tracer == nil {
		return nil
	}
	return &publishSpans{tracer: tracer, spans: map[outbox.ID]trace.Span{}}
}

// start opens the producer span of m, a child of its traceparent header,
// and puts the span's context in that header. A record without a valid
// traceparent is sent as it is.
func (p *publishSpans) start(m *sarama.ProducerMessage, id outbox.ID) {
	if p == nil {
		return
	}
	i := headerIndex(m.Headers, TraceparentHeader)
	if i < 0 {
		return
	}
	carrier := propagation.MapCarrier{"traceparent": string(m.Headers[i].Value)}
	parent := propagation.TraceContext{}.Extract(context.Background(), carrier)
	if !trace.SpanContextFromContext(parent).IsValid() {
		return
	}
	ctx, span := p.tracer.Start(parent, m.Topic+" publish",
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", m.Topic),
		))
	propagation.TraceContext{}.Inject(ctx, carrier)
	// The stored headers are the outbox's; the message gets its own copy.
	headers := append([]sarama.RecordHeader(nil), m.Headers...)
	headers[i].Value = []byte(carrier["traceparent"])
	m.Headers = headers
	p.mu.Lock()
	if old, ok := p.spans[id]; ok {
		old.End() // sent again within one session
	}
	p.spans[id] = span
	p.mu.Unlock()
}

// end closes the span of record id, with err as its error status.
func (p *publishSpans) end(id outbox.ID, err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	span, ok := p.spans[id]
	delete(p.spans, id)
	p.mu.Unlock()
	if !ok {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
	}
	span.End()
}

// endAll closes the spans of records a session leaves unconfirmed; the next
// session sends them again under new spans.
func (p *publishSpans) endAll(err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	spans := p.spans
	p.spans = map[outbox.ID]trace.Span{}
	p.mu.Unlock()
	for _, span := range spans {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not confirmed")
		span.End()
	}
}

func headerIndex(hs []sarama.RecordHeader, key string) int {
	for i, h := range hs {
		if string(h.Key) == key {
			return i
		}
	}
	return -1
}
