package events

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Intents close the window between a service's commit and the event's
// append to the outbox, in which a gateway that dies (SIGKILL, OOM, a
// crash) would lose the event of a change that was made.
//
// Every mutation carries an Idempotency-Key to its service: the client's,
// or one the gateway makes. Before the upstream call the gateway writes an
// intent (method, key, request, trace context) to its intent log; once the
// answer's events are in the outbox the intent is done. An intent left
// over, because the gateway died, or the call's outcome is unknown (a
// timeout, a dropped connection, a 5xx), is resolved later by asking the
// owning service, read-only, what became of that key
// (GET /internal/idempotency): for a change that was applied, the event
// is built from the service's stored answer with the same ce_id the
// answer would have had, so consumers that dedupe on ce_id see it once.
//
// The intent is written to the file but not fsynced before the call: it
// survives a crash of the gateway process, which is the failure it is
// for, without a second fsync on the hot path; after a power loss a
// mutation in flight at that instant may lack its event.

// IntentLog is the durable log of intents: *outbox.Outbox (opened with
// NoSync, in its own directory). Records are read back with Next and
// released with Ack, in id order.
type IntentLog interface {
	Append(ctx context.Context, rec outbox.Record) (outbox.ID, error)
	Next(ctx context.Context, limit int) ([]outbox.Entry, error)
	Ack(upTo outbox.ID) error
	Stats() outbox.Stats
}

// LookupFunc asks the service that owns fullMethod what became of req sent
// with Idempotency-Key key, read-only (forward.Forwarder.Lookup): one of
// "applied" (resp filled from the stored answer), "committed" (applied,
// answer not recorded), "pending" or "unknown".
type LookupFunc func(ctx context.Context, fullMethod string, req proto.Message, key string, resp proto.Message) (string, error)

// Lookup states of LookupFunc.
const (
	lookupApplied   = "applied"
	lookupCommitted = "committed"
	lookupPending   = "pending"
)

// DefaultResolveAfter is how old an open intent must be before its service
// is asked about it: by then a call that was still running when the
// gateway lost sight of it has finished.
const DefaultResolveAfter = 10 * time.Second

// Header keys of an intent record. The value is the request in
// deterministic protobuf encoding, the Kafka-style key the Idempotency-Key.
var (
	iMethod      = []byte("method")
	iRequestID   = []byte(HeaderRequestID)
	iTraceparent = []byte("traceparent")
	iTracestate  = []byte("tracestate")
)

// intent is one mutation whose events are not known to be in the outbox.
type intent struct {
	id       outbox.ID
	method   string
	key      string
	req      []byte // deterministic encoding; its SHA-256 is the digest
	meta     eventMeta
	created  time.Time
	inFlight bool // the call is still running in this process
}

// intents is the set of open intents and the log behind it.
type intents struct {
	log    IntentLog
	lookup LookupFunc
	after  time.Duration
	l      *slog.Logger

	mu       sync.Mutex
	open     map[outbox.ID]*intent
	readUpTo outbox.ID // highest id the reader has seen
	prevRead outbox.ID // readUpTo at the previous ack round
	bootLast outbox.ID // ids up to here are left over from an earlier run
	caughtUp bool      // the reader has seen every left-over intent
}

func newIntents(log IntentLog, lookup LookupFunc, after time.Duration, l *slog.Logger) *intents {
	return &intents{log: log, lookup: lookup, after: after, l: l, open: map[outbox.ID]*intent{}, bootLast: log.Stats().LastID}
}

// record writes the intent of a mutation about to be sent and registers it
// as in flight.
func (in *intents) record(ctx context.Context, method, key string, reqBytes []byte, m eventMeta) (*intent, error) {
	rec := outbox.Record{Topic: "intent", Key: []byte(key), Value: reqBytes, Headers: []outbox.Header{
		{Key: iMethod, Value: []byte(method)},
		{Key: iRequestID, Value: []byte(m.requestID)},
		{Key: iTraceparent, Value: []byte(m.traceparent)},
		{Key: iTracestate, Value: []byte(m.tracestate)},
	}}
	id, err := in.log.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		return nil, err
	}
	it := &intent{id: id, method: method, key: key, req: reqBytes, meta: m, created: time.Now(), inFlight: true}
	in.mu.Lock()
	in.open[id] = it
	in.mu.Unlock()
	return it, nil
}

// done forgets an intent whose outcome is settled: its events are in the
// outbox, or its service refused it (nothing was changed).
func (in *intents) done(it *intent) {
	in.mu.Lock()
	delete(in.open, it.id)
	in.mu.Unlock()
}

// unsettled leaves an intent open for the resolver: its call ended without
// telling whether the change was made.
func (in *intents) unsettled(it *intent) {
	in.mu.Lock()
	it.inFlight = false
	in.mu.Unlock()
}

// notApplied reports whether a failed call's error says the service made
// no change: an answer about the request itself. Anything else (no
// answer, a timeout, a 5xx) leaves the outcome unknown.
func notApplied(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.PermissionDenied, codes.Unauthenticated, codes.OutOfRange, codes.Aborted, codes.Unimplemented:
		return true
	}
	return false
}

// RunResolver reads the intent log (left-over intents of an earlier run
// first), resolves every open intent older than the resolve delay by
// asking its service, and releases resolved intents from the log, until
// ctx ends. It does nothing when intents are off.
func (e *Emitter) RunResolver(ctx context.Context) {
	in := e.intents
	if in == nil {
		return
	}
	go in.read(ctx)
	t := time.NewTicker(max(in.after/10, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.resolveDue(ctx)
		in.ack()
	}
}

// read follows the log: intents of an earlier run become open (not in
// flight), the others were registered by record.
func (in *intents) read(ctx context.Context) {
	in.mu.Lock()
	in.caughtUp = in.bootLast == 0 || in.readUpTo >= in.bootLast
	in.mu.Unlock()
	for {
		es, err := in.log.Next(ctx, 256)
		if err != nil {
			return
		}
		in.mu.Lock()
		for _, e := range es {
			in.readUpTo = e.ID
			if e.ID > in.bootLast {
				continue
			}
			it := &intent{id: e.ID, key: string(e.Key), req: e.Value, created: e.Time}
			for _, h := range e.Headers {
				switch string(h.Key) {
				case string(iMethod):
					it.method = string(h.Value)
				case string(iRequestID):
					it.meta.requestID = string(h.Value)
				case string(iTraceparent):
					it.meta.traceparent = string(h.Value)
				case string(iTracestate):
					it.meta.tracestate = string(h.Value)
				}
			}
			in.open[e.ID] = it
		}
		in.caughtUp = in.readUpTo >= in.bootLast
		in.mu.Unlock()
	}
}

// ack releases the log up to the oldest open intent, and no further than
// what the reader had seen at the previous round: an intent of this
// process is in the log (and may be read) a moment before record
// registers it as open, and a round apart that moment has passed.
func (in *intents) ack() {
	in.mu.Lock()
	upTo := in.prevRead
	in.prevRead = in.readUpTo
	for id := range in.open {
		if id <= upTo {
			upTo = id - 1
		}
	}
	in.mu.Unlock()
	if upTo > 0 {
		if err := in.log.Ack(upTo); err != nil && !errors.Is(err, outbox.ErrClosed) {
			in.l.Warn("intent log ack failed", slog.Any("error", err))
		}
	}
}

// resolveDue asks the services about the open intents that are due.
func (e *Emitter) resolveDue(ctx context.Context) {
	in := e.intents
	now := time.Now()
	in.mu.Lock()
	if !in.caughtUp {
		in.mu.Unlock()
		return
	}
	var due []*intent
	for _, it := range in.open {
		if !it.inFlight && now.Sub(it.created) >= in.after {
			due = append(due, it)
		}
	}
	in.mu.Unlock()
	for _, it := range due {
		if ctx.Err() != nil {
			return
		}
		if e.resolve(ctx, it) {
			in.done(it)
		}
	}
}

// resolve settles one open intent; false leaves it open (its service is
// unreachable, or still running it).
func (e *Emitter) resolve(ctx context.Context, it *intent) bool {
	s := e.specs[it.method]
	if s == nil {
		e.log.Warn("intent of a method without events dropped", slog.String("rpc", it.method))
		return true
	}
	req := s.input.New().Interface()
	if err := proto.Unmarshal(it.req, req); err != nil {
		e.log.Error("intent with an undecodable request dropped", slog.String("rpc", it.method), slog.Any("error", err))
		return true
	}
	resp := s.output.New().Interface()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	state, err := e.intents.lookup(lctx, it.method, req, it.key, resp)
	switch {
	case err != nil:
		e.log.Debug("intent not resolved yet: lookup failed", slog.String("rpc", it.method), slog.Any("error", err))
		return false
	case state == lookupPending:
		return false
	case state == lookupCommitted:
		e.log.Error("a change was made but its service kept no answer: no event can be built",
			slog.String("rpc", it.method), slog.String("request_id", it.meta.requestID))
		return true
	case state != lookupApplied:
		return true // not applied: nothing to emit
	}
	digest := sha256.Sum256(it.req)
	m := it.meta
	m.id, m.time = eventID(s.method, it.key, &digest), time.Now()
	recs, _, err := e.build(s, resp, m)
	if err != nil {
		e.log.Error("event of a resolved intent not built", slog.String("rpc", it.method), slog.Any("error", err))
		return true
	}
	if _, err := e.appendAll(ctx, s, recs); err != nil {
		return false
	}
	e.log.Info("event of a change the gateway had not seen answered emitted from its service's record",
		slog.String("rpc", it.method), slog.String("event_id", m.id), slog.String("request_id", m.requestID))
	return true
}

// generatedKey returns a fresh Idempotency-Key for a mutation whose client
// sent none.
func generatedKey() string { return "gw-" + reqinfo.NewRequestID() }

// OpenIntents is the number of mutations whose events are not known to be
// in the outbox yet (in flight, or waiting for the resolver); 0 when
// intents are off.
func (e *Emitter) OpenIntents() int {
	if e.intents == nil {
		return 0
	}
	e.intents.mu.Lock()
	defer e.intents.mu.Unlock()
	return len(e.intents.open)
}
