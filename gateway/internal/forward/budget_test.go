package forward_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// hungDoer never answers: it returns when its context ends, as the
// upstream pool does, and records how long it was given.
type hungDoer struct{ given chan time.Duration }

func (d *hungDoer) Do(ctx context.Context, _ *upstream.Request) (*upstream.Response, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		d.given <- -1
	} else {
		d.given <- time.Until(dl)
	}
	<-ctx.Done()
	return &upstream.Response{}, status.Error(codes.DeadlineExceeded, "service_b did not answer in time")
}

// TestFallbackBudget checks the deadline the primary of GetCart gets: a
// fraction of the caller's remaining deadline, at most FallbackMax, and
// that the fallback answers when the primary hangs.
func TestFallbackBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		opts     forward.Options
		deadline time.Duration // 0: none
		wantMax  time.Duration
	}{
		{name: "no deadline: the max", opts: forward.Options{FallbackMax: 200 * time.Millisecond}, wantMax: 200 * time.Millisecond},
		{name: "long deadline: the max", opts: forward.Options{FallbackMax: 200 * time.Millisecond}, deadline: 10 * time.Second, wantMax: 200 * time.Millisecond},
		{name: "short deadline: the fraction", opts: forward.Options{FallbackFraction: 0.25, FallbackMax: time.Second}, deadline: 400 * time.Millisecond, wantMax: 100 * time.Millisecond},
		{name: "defaults", deadline: 1 * time.Second, wantMax: 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := &hungDoer{given: make(chan time.Duration, 1)}
			a := &fakeDoer{name: "a", body: `{"user_id":"3","items":[]}`}
			f, err := forward.New(app.Services(), forward.DefaultTable, map[string]forward.Doer{forward.ServiceA: a, forward.ServiceB: b}, withAsserter(tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.deadline)
				defer cancel()
			}
			resp := &cartv1.GetCartResponse{}
			if err := f.Handle(ctx, "/shop.cart.v1.CartService/GetCart", &cartv1.GetCartRequest{UserId: 3}, resp); err != nil {
				t.Fatalf("Handle with service B hung: %v, want the fallback cart", err)
			}
			if got := <-b.given; got < 0 || got > tc.wantMax {
				t.Errorf("service B was given %v, want at most %v", got, tc.wantMax)
			}
			if got := a.last(t); got.Method != http.MethodPost || got.Path != "/cart/fallback" {
				t.Errorf("fallback request %s %s, want POST /cart/fallback", got.Method, got.Path)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, o := range []forward.Options{{FallbackFraction: 1.5}, {FallbackFraction: -1}, {FallbackMax: -time.Second}, {Timeout: -1}} {
		if _, err := forward.New(app.Services(), forward.DefaultTable, nil, o); err == nil {
			t.Errorf("New with %+v: no error, want one", o)
		}
	}
}

func withAsserter(o forward.Options) forward.Options {
	o.Asserter = testAsserter
	return o
}
