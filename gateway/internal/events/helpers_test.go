package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// fakeOutbox records appends; admitErr and appendErr make it refuse.
type fakeOutbox struct {
	mu        sync.Mutex
	recs      []outbox.Record
	admitErr  error
	appendErr error
	// failAt, when above 0, makes appends fail with appendErr only once
	// that many records are stored.
	failAt int
}

func (f *fakeOutbox) Admit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.admitErr
}

func (f *fakeOutbox) Append(_ context.Context, rec outbox.Record) (outbox.ID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appendErr != nil && len(f.recs) >= f.failAt {
		return 0, f.appendErr
	}
	f.recs = append(f.recs, rec)
	return outbox.ID(len(f.recs)), nil
}

func (f *fakeOutbox) set(admitErr, appendErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.admitErr, f.appendErr, f.failAt = admitErr, appendErr, 0
}

func (f *fakeOutbox) records() []outbox.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]outbox.Record(nil), f.recs...)
}

var testTime = time.Date(2026, 3, 14, 15, 9, 26, 535000000, time.UTC)

// newEmitter builds an Emitter on ob with a fixed clock; mod adjusts the
// config.
func newEmitter(tb testing.TB, ob events.Outbox, mod func(*events.Config)) *events.Emitter {
	tb.Helper()
	cfg := events.Config{Services: app.Services(), Outbox: ob, Now: func() time.Time { return testTime }}
	if mod != nil {
		mod(&cfg)
	}
	em, err := events.New(cfg)
	if err != nil {
		tb.Fatalf("events.New: %v", err)
	}
	return em
}

// fakeHandler answers with resp (or err) and counts its calls.
type fakeHandler struct {
	mu    sync.Mutex
	calls int
	resp  proto.Message
	err   error
	// block, when set, is waited on before answering.
	block chan struct{}
}

func (h *fakeHandler) handle(ctx context.Context, _ any) (any, error) {
	h.mu.Lock()
	h.calls++
	block := h.block
	h.mu.Unlock()
	if block != nil {
		<-block
	}
	if h.err != nil {
		return nil, h.err
	}
	return proto.Clone(h.resp), nil
}

func (h *fakeHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// headerStream collects the header metadata an interceptor sets.
type headerStream struct {
	mu     sync.Mutex
	header metadata.MD
}

func (s *headerStream) Method() string { return "" }
func (s *headerStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *headerStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *headerStream) SetTrailer(metadata.MD) error    { return nil }

func (s *headerStream) get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.header.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// call runs one RPC through the emitter's interceptor with the incoming
// metadata pairs md, and returns the response, the error and the headers
// the interceptor set.
func call(tb testing.TB, em *events.Emitter, method string, req proto.Message, h *fakeHandler, md ...string) (any, error, *headerStream) {
	tb.Helper()
	hs := &headerStream{}
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), hs)
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(md...))
	resp, err := em.Interceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, h.handle)
	return resp, err, hs
}

func headers(rec outbox.Record) map[string]string {
	out := map[string]string{}
	for _, h := range rec.Headers {
		out[string(h.Key)] = string(h.Value)
	}
	return out
}
