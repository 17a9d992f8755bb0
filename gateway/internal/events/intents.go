package events

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strconv"
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
// or one the gateway makes. A service commits the change and its
// idempotency record (caller, method, path, key, request digest, answer)
// in one transaction, and refuses to commit once the request's deadline
// (X-Request-Deadline, which the forwarder sends) has passed. So once the
// deadline is over, the service's record is the final word on whether the
// change was made.
//
// Before the upstream call the gateway writes an intent (method, key,
// caller, deadline, request, trace context) to its intent log; once the
// answer's events are in the outbox, or the service refused the request,
// it appends a done marker for it. An intent without its marker, because
// the gateway died or the call's outcome was unknown (a timeout, a dropped
// connection, a 5xx), is resolved after its deadline plus ResolveAfter by
// asking the owning service, read-only, about that exact request from that
// caller (POST /internal/idempotency/lookup): "applied" comes with the
// stored answer, from which the event is built with the ce_id the answer
// would have had, so consumers that dedupe on ce_id see it once; anything
// else means it was not applied and never will be.
//
// The log is acknowledged up to the oldest intent still open; an intent
// left open longer than Config.CompactAfter (its service unreachable) is written
// again at the log's tail so that it never holds the rest back. After a
// restart only intents without a done marker are resolved.
//
// Records are written to the file but not fsynced: they survive a crash of
// the gateway process, which is the failure they are for, without a second
// fsync on the hot path; after a power loss a mutation in flight at that
// instant may lack its event.

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
// with Idempotency-Key key by the caller in ctx (reqinfo.CallerFrom),
// read-only (forward.Forwarder.Lookup): "applied" (resp filled from the
// stored answer) or "unknown" (no record of that request from that caller:
// not applied).
type LookupFunc func(ctx context.Context, fullMethod string, req proto.Message, key string, resp proto.Message) (string, error)

// lookupApplied is the LookupFunc state of a change that was made.
const lookupApplied = "applied"

// DefaultResolveAfter is how long after an open intent's deadline its
// service is asked about it: a margin for clocks that differ between the
// gateway and the service.
const DefaultResolveAfter = 5 * time.Second

// DefaultCallTimeout is the deadline assumed for a call whose caller set none.
const DefaultCallTimeout = 10 * time.Second

// defaultCompactAfter is how long an intent may stay open before it is
// written again at the log's tail (Config.CompactAfter).
const defaultCompactAfter = 30 * time.Second

// Header keys of an intent record. The value is the request in
// deterministic protobuf encoding, the Kafka-style key the Idempotency-Key.
// A done marker has topic doneTopic and the intent's id (decimal) as key.
var (
	iMethod      = []byte("method")
	iRequestID   = []byte(HeaderRequestID)
	iTraceparent = []byte("traceparent")
	iTracestate  = []byte("tracestate")
	iUser        = []byte("user")
	iScopes      = []byte("scopes")
	iDeadline    = []byte("deadline") // Unix milliseconds
	iCreated     = []byte("created")  // Unix milliseconds, of the first write
)

const (
	intentTopic = "intent"
	doneTopic   = "done"
)

// intent is one mutation whose events are not known to be in the outbox.
type intent struct {
	id       outbox.ID
	method   string
	key      string
	caller   *reqinfo.Caller // nil: anonymous
	req      []byte          // deterministic encoding; its SHA-256 is the digest
	meta     eventMeta
	created  time.Time
	deadline time.Time
	inFlight bool // the call is still running in this process
}

// record is the intent as written to the log.
func (it *intent) record() outbox.Record {
	user, scopes := "", ""
	if it.caller != nil {
		user, scopes = strconv.FormatInt(it.caller.UserID, 10), it.caller.Scopes
	}
	return outbox.Record{Topic: intentTopic, Key: []byte(it.key), Value: it.req, Headers: []outbox.Header{
		{Key: iMethod, Value: []byte(it.method)},
		{Key: iRequestID, Value: []byte(it.meta.requestID)},
		{Key: iTraceparent, Value: []byte(it.meta.traceparent)},
		{Key: iTracestate, Value: []byte(it.meta.tracestate)},
		{Key: iUser, Value: []byte(user)},
		{Key: iScopes, Value: []byte(scopes)},
		{Key: iDeadline, Value: strconv.AppendInt(nil, it.deadline.UnixMilli(), 10)},
		{Key: iCreated, Value: strconv.AppendInt(nil, it.created.UnixMilli(), 10)},
	}}
}

// intentOf reads an intent record back; callTimeout is the deadline of
// records that carry none.
func intentOf(e outbox.Entry, callTimeout time.Duration) *intent {
	it := &intent{id: e.ID, key: string(e.Key), req: e.Value, created: e.Time}
	var user, scopes string
	for _, h := range e.Headers {
		v := string(h.Value)
		switch string(h.Key) {
		case string(iMethod):
			it.method = v
		case string(iRequestID):
			it.meta.requestID = v
		case string(iTraceparent):
			it.meta.traceparent = v
		case string(iTracestate):
			it.meta.tracestate = v
		case string(iUser):
			user = v
		case string(iScopes):
			scopes = v
		case string(iDeadline):
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				it.deadline = time.UnixMilli(ms)
			}
		case string(iCreated):
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				it.created = time.UnixMilli(ms)
			}
		}
	}
	if id, err := strconv.ParseInt(user, 10, 64); err == nil && user != "" {
		it.caller = &reqinfo.Caller{UserID: id, Scopes: scopes}
	}
	if it.deadline.IsZero() {
		it.deadline = it.created.Add(callTimeout)
	}
	return it
}

// intents is the set of open intents and the log behind it.
type intents struct {
	log          IntentLog
	lookup       LookupFunc
	after        time.Duration
	callTimeout  time.Duration
	compactAfter time.Duration
	l            *slog.Logger

	mu       sync.Mutex
	open     map[outbox.ID]*intent
	readUpTo outbox.ID // highest id the reader has seen
	prevRead outbox.ID // readUpTo at the previous ack round
	bootLast outbox.ID // ids up to here are left over from an earlier run
	caughtUp bool      // the reader has seen every left-over intent
}

func newIntents(log IntentLog, lookup LookupFunc, after, callTimeout, compactAfter time.Duration, l *slog.Logger) *intents {
	return &intents{
		log: log, lookup: lookup, after: after, callTimeout: callTimeout, compactAfter: compactAfter, l: l,
		open: map[outbox.ID]*intent{}, bootLast: log.Stats().LastID,
	}
}

// record writes the intent of a mutation about to be sent and registers it
// as in flight.
func (in *intents) record(ctx context.Context, method, key string, reqBytes []byte, m eventMeta) (*intent, error) {
	now := time.Now()
	it := &intent{method: method, key: key, caller: reqinfo.CallerFrom(ctx), req: reqBytes, meta: m, created: now, inFlight: true}
	if dl, ok := ctx.Deadline(); ok {
		it.deadline = dl
	} else {
		it.deadline = now.Add(in.callTimeout)
	}
	id, err := in.log.Append(context.WithoutCancel(ctx), it.record())
	if err != nil {
		return nil, err
	}
	it.id = id
	in.mu.Lock()
	in.open[id] = it
	in.mu.Unlock()
	return it, nil
}

// done forgets an intent whose outcome is settled (its events are in the
// outbox, or its service refused it: nothing was changed) and writes its
// done marker, so that a restart does not resolve it again.
func (in *intents) done(it *intent) {
	in.mu.Lock()
	delete(in.open, it.id)
	in.mu.Unlock()
	marker := outbox.Record{Topic: doneTopic, Key: strconv.AppendUint(nil, uint64(it.id), 10)}
	if _, err := in.log.Append(context.Background(), marker); err != nil && !errors.Is(err, outbox.ErrClosed) {
		// Without it a restart resolves the intent again: its event may be
		// published twice, with the same ce_id.
		in.l.Warn("intent done marker not written", slog.Any("error", err))
	}
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
		in.ack(ctx)
	}
}

// read follows the log: intents of an earlier run without a done marker
// become open (not in flight); this run's were registered by record.
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
			switch e.Topic {
			case doneTopic:
				if id, err := strconv.ParseUint(string(e.Key), 10, 64); err == nil {
					delete(in.open, outbox.ID(id))
				}
			case intentTopic:
				in.open[e.ID] = intentOf(e, in.callTimeout)
			}
		}
		in.caughtUp = in.readUpTo >= in.bootLast
		in.mu.Unlock()
	}
}

// ack releases the log up to the oldest open intent, and no further than
// what the reader had seen at the previous round: an intent of this
// process is in the log (and may be read) a moment before record
// registers it as open, and a round apart that moment has passed. An
// intent open for longer than compactAfter is first written again at the
// tail, so that it does not hold the log back.
func (in *intents) ack(ctx context.Context) {
	now := time.Now()
	in.mu.Lock()
	var old []*intent
	for _, it := range in.open {
		if !it.inFlight && it.id <= in.prevRead && now.Sub(it.created) >= in.compactAfter {
			old = append(old, it)
		}
	}
	in.mu.Unlock()
	for _, it := range old {
		id, err := in.log.Append(context.WithoutCancel(ctx), it.record())
		if err != nil {
			break // the next round tries again
		}
		in.mu.Lock()
		if in.open[it.id] == it {
			delete(in.open, it.id)
			it.id = id
			in.open[id] = it
		}
		in.mu.Unlock()
	}
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
		if !it.inFlight && !now.Before(it.deadline.Add(in.after)) {
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
	if it.caller != nil {
		lctx = reqinfo.WithCaller(lctx, it.caller)
	}
	state, err := e.intents.lookup(lctx, it.method, req, it.key, resp)
	switch {
	case err != nil:
		e.log.Debug("intent not resolved yet: lookup failed", slog.String("rpc", it.method), slog.Any("error", err))
		return false
	case state != lookupApplied:
		return true // not applied, and past its deadline it never will be: nothing to emit
	}
	digest := sha256.Sum256(it.req)
	m := it.meta
	m.id, m.time = eventID(s.method, scopedKey(it.caller, it.key), &digest), time.Now()
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

// IntentLogDepth is the number of records in the intent log not yet
// acknowledged (intents and done markers); 0 when intents are off.
func (e *Emitter) IntentLogDepth() int64 {
	if e.intents == nil {
		return 0
	}
	return e.intents.log.Stats().Depth
}
