package events

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/outbox"
)

// The idempotency store remembers, per (method, Idempotency-Key), the
// successful response of a mutation for a window, so that a client's retry
// gets the same answer without a second upstream call or a second event.
//
// It lives in memory, bounded by a byte budget, oldest first out. A retry
// that reaches the gateway after a restart (or after its entry was pushed
// out by the budget) goes to the service with the same Idempotency-Key
// (the forwarder passes it on), and the service, which keeps keys in its
// database in the transaction of the change, answers it without applying
// the change again. Its event then carries the same ce_id as the first one
// (eventID derives it from the method, key and request), so consumers that
// dedupe on ce_id see one event. A durable store here would cost a second
// fsync per mutation on the hot path and still not know about a change the
// service committed just before the gateway died.
//
// Only successes are stored. A failed mutation changed nothing, so a retry
// may simply run again (and may succeed: stock was added, a service came
// back). The exception is a mutation that succeeded upstream but whose event
// could not be appended to the outbox: its entry keeps the response and the
// event, and a retry appends the event and answers with the response
// without calling the service again.

type entryState int

const (
	stateInFlight entryState = iota
	stateDone
)

type storeKey struct {
	method string
	key    string
}

// entry is one remembered request. Its fields are guarded by store.mu.
type entry struct {
	k       storeKey
	digest  [sha256.Size]byte
	expires time.Time
	state   entryState
	resp    proto.Message   // stateDone: the response, never mutated
	eventID string          // stateDone: the ce_id of its event
	pending []outbox.Record // stateDone: events not yet appended, or nil
	size    int64
	elem    *list.Element
}

// verdict is what begin decides for a request.
type verdict int

const (
	// verdictRun: nothing stored; the caller runs the request and then
	// calls finish or abort with the entry.
	verdictRun verdict = iota
	// verdictReplay: a stored result; answer with it.
	verdictReplay
	// verdictInFlight: the same key is being served right now.
	verdictInFlight
	// verdictMismatch: the key was used for a different request.
	verdictMismatch
)

// entryOverhead approximates the bookkeeping bytes of one entry.
const entryOverhead = 256

type store struct {
	window   time.Duration
	maxBytes int64
	now      func() time.Time

	mu    sync.Mutex
	m     map[storeKey]*entry
	order list.List // oldest first; every entry has the same window
	bytes int64
}

func newStore(window time.Duration, maxBytes int64, now func() time.Time) *store {
	return &store{window: window, maxBytes: maxBytes, now: now, m: map[storeKey]*entry{}}
}

// begin looks (method, key) up. With verdictRun it has reserved the key: the
// returned entry is in flight until finish or abort.
func (s *store) begin(method, key string, digest *[sha256.Size]byte) (*entry, verdict) {
	now := s.now()
	k := storeKey{method, key}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if e, ok := s.m[k]; ok {
		switch {
		case e.digest != *digest:
			return nil, verdictMismatch
		case e.state == stateInFlight:
			return nil, verdictInFlight
		}
		return e, verdictReplay
	}
	e := &entry{k: k, digest: *digest, expires: now.Add(s.window), size: entryOverhead + int64(len(method)+len(key))}
	e.elem = s.order.PushBack(e)
	s.m[k] = e
	s.bytes += e.size
	s.evict()
	return e, verdictRun
}

// finish stores the result of an entry begin returned: the response and
// the id of its event, and the event itself when it could not be appended.
func (s *store) finish(e *entry, resp proto.Message, eventID string, pending []outbox.Record) {
	size := int64(proto.Size(resp)) + int64(len(eventID))
	for i := range pending {
		size += recordSize(&pending[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.state, e.resp, e.eventID, e.pending = stateDone, resp, eventID, pending
	if s.m[e.k] != e {
		return // pushed out while in flight
	}
	s.bytes += size
	e.size += size
	s.evict()
}

// abort forgets an entry begin returned, so that the key may be used again.
func (s *store) abort(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(e)
}

// replayed returns a done entry's stored result. pending are the events
// still to be appended, or nil.
func (s *store) replayed(e *entry) (resp proto.Message, eventID string, pending []outbox.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.resp, e.eventID, e.pending
}

// appended records that of the pending events was, which replayed
// returned, only left are still to be appended; a concurrent replay that
// changed them meanwhile wins.
func (s *store) appended(e *entry, was, left []outbox.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(e.pending) > 0 && len(was) > 0 && &e.pending[0] == &was[0] {
		e.pending = left
	}
}

// len returns the number of entries and their approximate size in bytes.
func (s *store) len() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m), s.bytes
}

func (s *store) expire(now time.Time) {
	for f := s.order.Front(); f != nil; f = s.order.Front() {
		e := f.Value.(*entry)
		if e.expires.After(now) {
			return
		}
		s.remove(e)
	}
}

// evict drops the oldest entries while over budget. An entry with an event
// still pending is the last thing worth keeping, but the budget is a hard
// bound; its event's id stays deterministic for the client's retry anyway.
func (s *store) evict() {
	for s.bytes > s.maxBytes && s.order.Len() > 1 {
		s.remove(s.order.Front().Value.(*entry))
	}
}

func (s *store) remove(e *entry) {
	if s.m[e.k] != e {
		return
	}
	delete(s.m, e.k)
	s.order.Remove(e.elem)
	s.bytes -= e.size
}

func recordSize(r *outbox.Record) int64 {
	n := len(r.Topic) + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}
