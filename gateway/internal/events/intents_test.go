package events_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

const addCartItem = "/shop.cart.v1.CartService/AddCartItem"

// fakeLookup answers the resolver's lookups with a fixed state and
// response, and records the keys it was asked about.
type fakeLookup struct {
	mu      sync.Mutex
	state   string
	err     error // when set, every lookup fails with it (the service unreachable)
	resp    proto.Message
	keys    []string
	callers []*reqinfo.Caller
}

func (l *fakeLookup) lookup(ctx context.Context, _ string, _ proto.Message, key string, resp proto.Message) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
	l.callers = append(l.callers, reqinfo.CallerFrom(ctx))
	if l.err != nil {
		return "", l.err
	}
	if l.state == "applied" {
		proto.Merge(resp, l.resp)
	}
	return l.state, nil
}

func (l *fakeLookup) asked() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.keys...)
}

// TestIntentsResolveUnknownOutcomes: a mutation whose call ends without
// telling whether the change was made (UNAVAILABLE) is looked up later;
// applied, its event is emitted from the service's answer, once; not
// applied, nothing is. A refusal (FAILED_PRECONDITION) is never looked up.
func TestIntentsResolveUnknownOutcomes(t *testing.T) {
	t.Parallel()
	item := &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 9, UserId: 4, ProductId: 2, Quantity: 1}}
	for _, tc := range []struct {
		name       string
		callErr    error
		state      string
		wantLookup bool
		wantEvents int
	}{
		{"unknown outcome, applied", status.Error(codes.Unavailable, "service_a unavailable"), "applied", true, 1},
		{"unknown outcome, not applied", status.Error(codes.DeadlineExceeded, "too slow"), "unknown", true, 0},
		{"refused", status.Error(codes.FailedPrecondition, "not enough stock"), "applied", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			il, err := outbox.Open(t.TempDir(), outbox.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			ob := &fakeOutbox{}
			lk := &fakeLookup{state: tc.state, resp: item}
			em := newEmitter(t, ob, func(c *events.Config) {
				c.Intents, c.Lookup, c.ResolveAfter, c.CallTimeout = il, lk.lookup, time.Millisecond, time.Millisecond
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); em.RunResolver(ctx) }()
			t.Cleanup(func() { cancel(); <-done; _ = il.Close() })

			h := &fakeHandler{err: tc.callErr}
			if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 2, Quantity: 1}, h); status.Code(err) != status.Code(tc.callErr) {
				t.Fatalf("call: %v, want %v", err, tc.callErr)
			}
			deadline := time.Now().Add(5 * time.Second)
			for em.OpenIntents() > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := em.OpenIntents(); n != 0 {
				t.Fatalf("%d intents still open", n)
			}
			asked := lk.asked()
			if got := len(asked) > 0; got != tc.wantLookup {
				t.Errorf("looked up %v, want a lookup: %v", asked, tc.wantLookup)
			}
			for _, k := range asked {
				if !strings.HasPrefix(k, "gw-") {
					t.Errorf("looked up key %q, want the key the gateway made (gw-...)", k)
				}
			}
			recs := ob.records()
			if got, want := len(recs), tc.wantEvents; got != want {
				t.Fatalf("%d events, want %d", got, want)
			}
			if tc.wantEvents > 0 {
				if got, want := headers(recs[0])["ce_subject"], "9"; got != want {
					t.Errorf("ce_subject %q, want %q (from the service's stored answer)", got, want)
				}
			}
		})
	}
}

// TestIntentsSuccessNeedsNoLookup: a mutation answered normally writes one
// intent and settles it with its event; the service is never asked.
func TestIntentsSuccessNeedsNoLookup(t *testing.T) {
	t.Parallel()
	il, err := outbox.Open(t.TempDir(), outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = il.Close() })
	ob := &fakeOutbox{}
	lk := &fakeLookup{state: "applied"}
	em := newEmitter(t, ob, func(c *events.Config) { c.Intents, c.Lookup = il, lk.lookup })
	h := &fakeHandler{resp: &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 1, UserId: 4}}}
	if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 2, Quantity: 1}, h); err != nil {
		t.Fatal(err)
	}
	if got := em.OpenIntents(); got != 0 {
		t.Errorf("%d open intents after a success, want 0", got)
	}
	if got := len(ob.records()); got != 1 {
		t.Errorf("%d events, want 1", got)
	}
	if got := lk.asked(); len(got) != 0 {
		t.Errorf("looked up %v after a success, want no lookup", got)
	}
	if got := il.Stats().LastID; got != 2 {
		t.Errorf("intent log last id %d, want 2 (one intent and its done marker)", got)
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runResolver runs em's resolver until the test ends.
func runResolver(t *testing.T, em *events.Emitter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); em.RunResolver(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestIntentsRestartResolvesOnlyOpenIntents: after a crash, intents whose
// events were stored (done marker in the log) are not resolved again; only
// the one whose outcome was unknown is, once.
func TestIntentsRestartResolvesOnlyOpenIntents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	il, err := outbox.Open(dir, outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ob := &fakeOutbox{}
	em := newEmitter(t, ob, func(c *events.Config) {
		c.Intents, c.Lookup, c.CallTimeout = il, (&fakeLookup{}).lookup, time.Millisecond
	})
	ok := &fakeHandler{resp: &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 1, UserId: 4}}}
	for range 5 {
		if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 2, Quantity: 1}, ok); err != nil {
			t.Fatal(err)
		}
	}
	lost := &fakeHandler{err: status.Error(codes.Unavailable, "connection reset")}
	if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 3, Quantity: 1}, lost); status.Code(err) != codes.Unavailable {
		t.Fatalf("call: %v, want UNAVAILABLE", err)
	}
	// The process dies: no resolver ran, nothing was acknowledged.
	if err := il.Close(); err != nil {
		t.Fatal(err)
	}

	il2, err := outbox.Open(dir, outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = il2.Close() })
	ob2 := &fakeOutbox{}
	lk := &fakeLookup{state: "applied", resp: &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 7, UserId: 4, ProductId: 3}}}
	em2 := newEmitter(t, ob2, func(c *events.Config) {
		c.Intents, c.Lookup, c.ResolveAfter, c.CallTimeout = il2, lk.lookup, time.Millisecond, time.Millisecond
	})
	runResolver(t, em2)
	waitFor(t, "the left-over intent to be resolved", func() bool { return len(ob2.records()) > 0 && em2.OpenIntents() == 0 })
	time.Sleep(100 * time.Millisecond) // a few more resolver rounds
	if got := lk.asked(); len(got) != 1 {
		t.Errorf("looked up %d keys %v, want 1 (only the intent without a done marker)", len(got), got)
	}
	if got := len(ob2.records()); got != 1 {
		t.Errorf("%d events emitted after the restart, want 1", got)
	}
	waitFor(t, "the log to be acknowledged", func() bool { return il2.Stats().Depth == 0 })
}

// TestIntentsAnOpenIntentDoesNotPinTheLog: an intent whose service cannot
// be reached stays open, but is written again at the tail, so that the log
// is acknowledged past it and does not grow; once the service answers it
// is resolved.
func TestIntentsAnOpenIntentDoesNotPinTheLog(t *testing.T) {
	t.Parallel()
	il, err := outbox.Open(t.TempDir(), outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = il.Close() })
	ob := &fakeOutbox{}
	lk := &fakeLookup{state: "unknown", err: status.Error(codes.Unavailable, "service down")}
	em := newEmitter(t, ob, func(c *events.Config) {
		c.Intents, c.Lookup = il, lk.lookup
		c.ResolveAfter, c.CallTimeout, c.CompactAfter = time.Millisecond, time.Millisecond, 20*time.Millisecond
	})
	runResolver(t, em)
	lost := &fakeHandler{err: status.Error(codes.Unavailable, "connection reset")}
	if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 3, Quantity: 1}, lost); status.Code(err) != codes.Unavailable {
		t.Fatalf("call: %v, want UNAVAILABLE", err)
	}
	ok := &fakeHandler{resp: &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 1, UserId: 4}}}
	for range 50 {
		if _, err, _ := call(t, em, addCartItem, &cartv1.AddCartItemRequest{UserId: 4, ProductId: 2, Quantity: 1}, ok); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the log to be acknowledged past the open intent", func() bool { return il.Stats().Depth <= 2 })
	if got := em.OpenIntents(); got != 1 {
		t.Fatalf("%d open intents, want the unresolved one", got)
	}
	lk.mu.Lock()
	lk.err = nil
	lk.mu.Unlock()
	waitFor(t, "the intent to be resolved", func() bool { return em.OpenIntents() == 0 })
}

// TestIntentsAreResolvedAsTheirCaller: the lookup is made as the caller
// that sent the mutation, and two callers' same key and request make two
// different ce_ids: one user's key never names another user's change.
func TestIntentsAreResolvedAsTheirCaller(t *testing.T) {
	t.Parallel()
	il, err := outbox.Open(t.TempDir(), outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = il.Close() })
	ob := &fakeOutbox{}
	lk := &fakeLookup{state: "applied", resp: &cartv1.AddCartItemResponse{Item: &cartv1.CartItem{ItemId: 9, UserId: 4}}}
	em := newEmitter(t, ob, func(c *events.Config) {
		c.Intents, c.Lookup, c.ResolveAfter, c.CallTimeout = il, lk.lookup, time.Millisecond, time.Millisecond
		c.IdempotencyWindow = -1 // no replay from the gateway's memory: each call reaches the handler
	})
	runResolver(t, em)
	req := &cartv1.AddCartItemRequest{UserId: 4, ProductId: 2, Quantity: 1}
	lost := &fakeHandler{err: status.Error(codes.DeadlineExceeded, "too slow")}
	for _, user := range []int64{7, 8} {
		ctx := reqinfo.WithCaller(context.Background(), &reqinfo.Caller{UserID: user, Scopes: "shop:admin"})
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("idempotency-key", "same-key"))
		if _, err := em.Interceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: addCartItem}, lost.handle); status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call as %d: %v", user, err)
		}
	}
	waitFor(t, "both intents to be resolved", func() bool { return em.OpenIntents() == 0 })
	lk.mu.Lock()
	callers := append([]*reqinfo.Caller(nil), lk.callers...)
	lk.mu.Unlock()
	var users []int64
	for _, c := range callers {
		if c == nil {
			t.Fatal("a lookup was made without the caller")
		}
		users = append(users, c.UserID)
	}
	slices.Sort(users)
	if !slices.Equal(users, []int64{7, 8}) {
		t.Errorf("lookups made as users %v, want [7 8]", users)
	}
	recs := ob.records()
	if len(recs) != 2 {
		t.Fatalf("%d events, want 2", len(recs))
	}
	if a, b := headers(recs[0])["ce_id"], headers(recs[1])["ce_id"]; a == b {
		t.Errorf("two callers' changes share ce_id %s", a)
	}
}
