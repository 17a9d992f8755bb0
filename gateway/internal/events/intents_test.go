package events_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/outbox"
)

const addCartItem = "/shop.cart.v1.CartService/AddCartItem"

// fakeLookup answers the resolver's lookups with a fixed state and
// response, and records the keys it was asked about.
type fakeLookup struct {
	mu    sync.Mutex
	state string
	resp  proto.Message
	keys  []string
}

func (l *fakeLookup) lookup(_ context.Context, _ string, _ proto.Message, key string, resp proto.Message) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, key)
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
				c.Intents, c.Lookup, c.ResolveAfter = il, lk.lookup, time.Millisecond
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
	if got := il.Stats().LastID; got != 1 {
		t.Errorf("intent log last id %d, want 1 (one intent written)", got)
	}
}
