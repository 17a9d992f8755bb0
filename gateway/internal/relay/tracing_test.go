package relay

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestPublishSpans(t *testing.T) {
	t.Parallel()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	header := func(v string) sarama.RecordHeader {
		return sarama.RecordHeader{Key: []byte(TraceparentHeader), Value: []byte(v)}
	}
	id := sarama.RecordHeader{Key: []byte("ce_id"), Value: []byte("e1")}
	cases := []struct {
		name      string
		headers   []sarama.RecordHeader
		err       error
		wantSpan  bool
		wantError bool
	}{
		{"confirmed", []sarama.RecordHeader{id, header(parent)}, nil, true, false},
		{"failed", []sarama.RecordHeader{id, header(parent)}, errors.New("broker said no"), true, true},
		{"no trace context", []sarama.RecordHeader{id}, nil, false, false},
		{"invalid trace context", []sarama.RecordHeader{header("00-zz")}, nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := tracetest.NewSpanRecorder()
			ps := newPublishSpans(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test"))
			stored := append([]sarama.RecordHeader(nil), tc.headers...)
			m := &sarama.ProducerMessage{Topic: "shop.order.v1", Headers: stored}
			ps.start(m, 7)
			ps.end(7, tc.err)
			ended := rec.Ended()
			if !tc.wantSpan {
				if len(ended) != 0 {
					t.Fatalf("%d spans, want none", len(ended))
				}
				return
			}
			if len(ended) != 1 {
				t.Fatalf("%d spans, want 1", len(ended))
			}
			s := ended[0]
			if s.Name() != "shop.order.v1 publish" || s.SpanKind() != trace.SpanKindProducer ||
				s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("span %q kind %v parent %v, want a producer span under the record's traceparent", s.Name(), s.SpanKind(), s.Parent())
			}
			if got := s.Status().Code == codes.Error; got != tc.wantError {
				t.Errorf("error status %v, want %v", got, tc.wantError)
			}
			sent := string(m.Headers[headerIndex(m.Headers, TraceparentHeader)].Value)
			if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + s.SpanContext().SpanID().String() + "-01"; sent != want {
				t.Errorf("sent traceparent %q, want %q", sent, want)
			}
			if string(stored[1].Value) != parent {
				t.Errorf("the stored headers were changed")
			}
		})
	}
}
