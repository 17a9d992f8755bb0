// Package events emits a Kafka event for every successful mutation that
// passes through the gateway. Which RPC emits which event is declared in the
// proto, next to the RPC, by the (shop.annotations.v1.emits) method option;
// the payload is a message of shop.events.v1 filled from the RPC response by
// field name. Adding an event is a proto change, not Go code.
//
// The Emitter is a gRPC unary interceptor (the REST mux runs through the
// same chain). For an RPC with an EventSpec it
//
//   - honours an Idempotency-Key (metadata "idempotency-key"): a repeat of a
//     stored success within the window is answered from the store with
//     header "idempotency-replayed: true", without calling the service or
//     emitting again; see the store's doc for what is kept and for how long;
//   - asks the outbox for room before the service is called, and refuses
//     the mutation with UNAVAILABLE (HTTP 503) when the outbox is full, so
//     that nothing is changed that could not be recorded;
//   - after a successful call, builds a CloudEvents 1.0 record (Kafka binary
//     content mode) and appends it durably to the outbox before the response
//     goes out. A failed call emits nothing.
//
// The Kafka key and the ce_subject are read from the payload at the
// EventSpec's dotted paths. A path through a repeated field takes its first
// element. An EventSpec with a split field emits one event per element of
// it: StockProcessed is split by "items", so each product's decrement is an
// event keyed by that product, ordered with its other stock events.
//
// The relay (package relay) publishes the outbox to Kafka.
package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted, in bytes; a
// longer one, or one sent empty, is INVALID_ARGUMENT. The key travels as reqinfo.IdempotencyKey
// and a replayed answer is marked with reqinfo.ReplayedKey.
const MaxIdempotencyKeyLen = 255

// errEmptyKey refuses an Idempotency-Key that is sent with no value.
var errEmptyKey = apierr.New(codes.InvalidArgument, "Idempotency-Key must not be empty").
	WithViolations(apierr.FieldViolation{Field: "Idempotency-Key", Description: "must not be empty"})

// Emitter turns successful mutations into events in the outbox. It is safe
// for concurrent use.
type Emitter struct {
	specs         map[string]*spec
	ob            Outbox
	store         *store   // nil when the idempotency store is off
	intents       *intents // nil when intents are off
	source        []byte
	format        Format
	appendTimeout time.Duration
	log           *slog.Logger
	now           func() time.Time
	full          atomic.Bool
}

// New reads and checks the EventSpec of every method of cfg.Services and
// returns an Emitter. Every configuration and EventSpec problem is
// reported at once.
func New(cfg Config) (*Emitter, error) {
	cfg.setDefaults()
	verr := cfg.Validate()
	specs, serr := compileSpecs(cfg.Services, cfg.Topics)
	if err := errors.Join(verr, serr); err != nil {
		return nil, err
	}
	if cfg.DataSchema != "" {
		for _, s := range specs {
			s.dataSchema = []byte(cfg.DataSchema + SchemaPointer(string(s.ceType)))
		}
	}
	e := &Emitter{
		specs:         specs,
		ob:            cfg.Outbox,
		source:        []byte(cfg.Source),
		format:        cfg.Format,
		appendTimeout: cfg.AppendTimeout,
		log:           cfg.Logger,
		now:           cfg.Now,
	}
	if cfg.IdempotencyWindow > 0 {
		e.store = newStore(cfg.IdempotencyWindow, cfg.IdempotencyMaxBytes, cfg.Now)
	}
	if cfg.Intents != nil {
		e.intents = newIntents(cfg.Intents, cfg.Lookup, cfg.ResolveAfter, cfg.CallTimeout, cfg.CompactAfter, cfg.Logger)
	}
	return e, nil
}

// Topics returns the Kafka topics the events go to, sorted, for the relay
// to create.
func (e *Emitter) Topics() []string {
	var out []string
	for _, s := range e.specs {
		if !slices.Contains(out, s.topic) {
			out = append(out, s.topic)
		}
	}
	slices.Sort(out)
	return out
}

// Stats is a snapshot of the idempotency store.
type Stats struct {
	// IdempotencyEntries is the number of keys remembered.
	IdempotencyEntries int
	// IdempotencyBytes approximates their memory.
	IdempotencyBytes int64
}

// Stats returns a snapshot of the idempotency store.
func (e *Emitter) Stats() Stats {
	if e.store == nil {
		return Stats{}
	}
	n, b := e.store.len()
	return Stats{IdempotencyEntries: n, IdempotencyBytes: b}
}

// Interceptor returns the unary interceptor that emits the events. RPCs
// without an EventSpec pass through untouched.
func (e *Emitter) Interceptor() grpc.UnaryServerInterceptor { return e.intercept }

func (e *Emitter) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	s := e.specs[info.FullMethod]
	if s == nil {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	key := reqinfo.First(md, reqinfo.IdempotencyKey)
	if key == "" && len(md.Get(reqinfo.IdempotencyKey)) > 0 {
		// Sent but empty: a client that meant to send a key and lost it
		// must not get a change that a retry would make again.
		return nil, errEmptyKey
	}
	if key == "" && e.intents != nil {
		// The service keeps the key with the change, which is how a
		// left-over intent learns later whether the change was made.
		key = generatedKey()
		md = md.Copy()
		md.Set(reqinfo.IdempotencyKey, key)
		ctx = metadata.NewIncomingContext(ctx, md)
		digest, err := digestOf(req)
		if err != nil {
			return nil, apierr.New(codes.Internal, "request cannot be encoded")
		}
		return e.run(ctx, s, req, handler, md, key, &digest, nil)
	}
	if key == "" {
		return e.run(ctx, s, req, handler, md, "", nil, nil)
	}
	if len(key) > MaxIdempotencyKeyLen {
		return nil, apierr.Errorf(codes.InvalidArgument, "Idempotency-Key is longer than %d bytes", MaxIdempotencyKeyLen)
	}
	digest, err := digestOf(req)
	if err != nil {
		return nil, apierr.New(codes.Internal, "request cannot be encoded")
	}
	if e.store == nil {
		return e.run(ctx, s, req, handler, md, key, &digest, nil)
	}
	// The key is the caller's: one user's Idempotency-Key never replays
	// another user's answer (which the service would have refused them).
	ent, v := e.store.begin(s.method, scopedKey(reqinfo.CallerFrom(ctx), key), &digest)
	switch v {
	case verdictMismatch:
		return nil, apierr.New(codes.InvalidArgument, "Idempotency-Key was already used for a different request")
	case verdictInFlight:
		return nil, apierr.New(codes.Aborted, "a request with this Idempotency-Key is in progress; retry later")
	case verdictReplay:
		return e.replay(ctx, s, ent)
	}
	return e.run(ctx, s, req, handler, md, key, &digest, ent)
}

// run serves a mutation: admission, the call, the event. With an entry, it
// stores the result or, on failure, releases the key.
func (e *Emitter) run(ctx context.Context, s *spec, req any, handler grpc.UnaryHandler, md metadata.MD, key string, digest *[sha256.Size]byte, ent *entry) (_ any, err error) {
	stored := false
	if ent != nil {
		defer func() {
			if !stored {
				e.store.abort(ent)
			}
		}()
	}
	if err := e.admit(ctx); err != nil {
		return nil, err
	}
	meta := eventMeta{
		traceparent: reqinfo.First(md, reqinfo.TraceparentKey),
		tracestate:  reqinfo.First(md, reqinfo.TracestateKey),
		requestID:   reqinfo.First(md, reqinfo.RequestIDKey),
	}
	var it *intent
	if e.intents != nil && key != "" {
		reqBytes, err := protoOpts.Marshal(req.(proto.Message))
		if err != nil {
			return nil, apierr.New(codes.Internal, "request cannot be encoded")
		}
		if it, err = e.intents.record(ctx, s.method, key, reqBytes, meta); err != nil {
			e.log.LogAttrs(ctx, slog.LevelError, "intent not recorded; mutation refused before reaching its service",
				slog.String("rpc", s.method), slog.Any("error", err))
			return nil, apierr.New(codes.Unavailable, "event outbox unavailable; mutation refused, retry later")
		}
	}
	resp, err := handler(ctx, req)
	if err != nil {
		if it != nil {
			if notApplied(err) {
				e.intents.done(it)
			} else {
				e.intents.unsettled(it)
			}
		}
		return resp, err
	}
	msg, ok := resp.(proto.Message)
	if !ok {
		return nil, apierr.New(codes.Internal, "response is not a proto message")
	}
	id := eventID(s.method, scopedKey(reqinfo.CallerFrom(ctx), key), digest)
	meta.id, meta.time = id, e.now()
	recs, keyed, err := e.build(s, msg, meta)
	if err != nil {
		// compileSpecs checked the types, so this is a bug, not an outage.
		if it != nil {
			e.intents.done(it)
		}
		e.log.LogAttrs(ctx, slog.LevelError, "event not built: the mutation succeeded but emits nothing",
			slog.String("rpc", s.method), slog.String("request_id", reqinfo.First(md, reqinfo.RequestIDKey)), slog.Any("error", err))
		return nil, apierr.New(codes.Internal, "event could not be built")
	}
	if !keyed {
		e.log.LogAttrs(ctx, slog.LevelWarn, "event has no key, it goes to any partition",
			slog.String("rpc", s.method), slog.String("key_path", s.keyPath), slog.String("event_id", id))
	}
	if ri := reqinfo.FromContext(ctx); ri != nil {
		ri.Event = id
	}
	pending, aerr := e.appendAll(ctx, s, recs)
	if it != nil {
		if aerr == nil {
			e.intents.done(it)
		} else {
			e.intents.unsettled(it) // the resolver appends the events later
		}
	}
	if ent != nil {
		e.store.finish(ent, proto.Clone(msg), id, pending)
		stored = true
	}
	if aerr != nil {
		return nil, aerr
	}
	return resp, nil
}

// replay answers from a stored result, appending its events first if that
// failed the first time.
func (e *Emitter) replay(ctx context.Context, s *spec, ent *entry) (any, error) {
	resp, id, pending := e.store.replayed(ent)
	if ri := reqinfo.FromContext(ctx); ri != nil {
		ri.Event = id
	}
	if len(pending) > 0 {
		left, err := e.appendAll(ctx, s, pending)
		e.store.appended(ent, pending, left)
		if err != nil {
			return nil, err
		}
	}
	// Outside a gRPC call (direct use in tests) there is no stream to set
	// the header on; that is not an error of the RPC.
	_ = grpc.SetHeader(ctx, metadata.Pairs(reqinfo.ReplayedKey, "true"))
	return proto.Clone(resp), nil
}

// admit refuses a mutation the outbox has no room for, before anything is
// changed, and logs when that starts and stops.
func (e *Emitter) admit(ctx context.Context) error {
	err := e.ob.Admit()
	if err == nil {
		if e.full.Load() && e.full.Swap(false) {
			e.log.LogAttrs(ctx, slog.LevelInfo, "event outbox has room again, mutations accepted")
		}
		return nil
	}
	if errors.Is(err, outbox.ErrFull) {
		if !e.full.Swap(true) {
			e.log.LogAttrs(ctx, slog.LevelWarn, "event outbox full, mutations refused with UNAVAILABLE until the relay catches up")
		}
		return apierr.New(codes.Unavailable, "event outbox is full (Kafka unreachable); mutation refused, retry later")
	}
	// Closed (shutting down) or failed; the outbox logged a failure itself.
	return apierr.New(codes.Unavailable, "event outbox unavailable; mutation refused, retry later")
}

// appendAll stores recs durably, in order. It returns the records it could
// not store (from the first failure on) with that failure. The request's
// cancellation does not stop it: the mutation has happened.
func (e *Emitter) appendAll(ctx context.Context, s *spec, recs []outbox.Record) ([]outbox.Record, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.appendTimeout)
	defer cancel()
	for i := range recs {
		rec := &recs[i]
		if _, err := e.ob.Append(actx, *rec); err != nil {
			e.log.LogAttrs(ctx, slog.LevelError, "EVENT NOT STORED: the mutation succeeded but its event is not in the outbox; the client was told to retry with its Idempotency-Key",
				slog.String("rpc", s.method), slog.String("event_id", headerValue(rec, hID)), slog.String("topic", rec.Topic),
				slog.String("key", string(rec.Key)), slog.Int("events_not_stored", len(recs)-i), slog.Any("error", err))
			return recs[i:], apierr.New(codes.Unavailable, "the change was made but its event could not be recorded; retry with the same Idempotency-Key")
		}
	}
	return nil, nil
}

// headerValue returns the value of a record's header, "" when absent.
func headerValue(rec *outbox.Record, key []byte) string {
	for _, h := range rec.Headers {
		if bytes.Equal(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}

// digestOf is the SHA-256 of the request's deterministic encoding: what
// "the same request" means for an Idempotency-Key.
func digestOf(req any) ([sha256.Size]byte, error) {
	m, ok := req.(proto.Message)
	if !ok {
		return [sha256.Size]byte{}, errors.New("request is not a proto message")
	}
	b, err := protoOpts.Marshal(m)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// scopedKey scopes an Idempotency-Key to its caller (nil: anonymous), as
// the services scope theirs: one caller's key is never another's, in the
// idempotency store and in the ce_id derived from it. An empty key stays
// empty (an event id of its own).
func scopedKey(c *reqinfo.Caller, key string) string {
	if c == nil || key == "" {
		return key
	}
	return strconv.FormatInt(c.UserID, 10) + " " + key
}
