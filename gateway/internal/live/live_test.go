package live

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

func testHub(t *testing.T, buffer int) *Hub {
	t.Helper()
	kinds, err := newKinds()
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{cfg: Config{Buffer: buffer, Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, kinds: kinds, feeds: map[string]*feed{}}
	for _, k := range kinds {
		h.feeds[k.topic] = &feed{kind: k, topic: k.topic, subs: map[*sub]struct{}{}, pos: position{0: 0, 1: 0}, ready: true}
	}
	return h
}

func record(partition int32, offset int64, key, ceType, value string) *sarama.ConsumerMessage {
	return &sarama.ConsumerMessage{Partition: partition, Offset: offset, Key: []byte(key), Value: []byte(value),
		Headers: []*sarama.RecordHeader{
			{Key: []byte("ce_type"), Value: []byte(ceType)},
			{Key: []byte("ce_id"), Value: []byte("id-" + key)},
			{Key: []byte("ce_time"), Value: []byte("2026-12-07T10:00:00Z")},
			{Key: []byte("content-type"), Value: []byte("application/json")},
		}}
}

func TestDecodeCartEvent(t *testing.T) {
	t.Parallel()
	h := testHub(t, 4)
	k := h.kinds[WatchCart]
	msg, err := k.decode(headersOf(record(0, 0, "7", "shop.events.v1.CartItemAdded", `{"item":{"item_id":"3","user_id":"7","product_id":"9","quantity":2}}`)), []byte(`{"item":{"item_id":"3","user_id":"7","product_id":"9","quantity":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := msg.(*cartv1.WatchCartResponse)
	if got.GetItemAdded().GetItemId() != 3 || got.GetType() != "shop.events.v1.CartItemAdded" || got.GetId() != "id-7" || got.GetTime().AsTime().Year() != 2026 {
		t.Errorf("decoded %v", got)
	}
	typ, data, ok := PayloadJSON(got)
	if !ok || typ != "shop.events.v1.CartItemAdded" || !strings.Contains(string(data), `"item_id":"3"`) || strings.Contains(string(data), "\n") {
		t.Errorf("PayloadJSON = %q %s %v", typ, data, ok)
	}
	// A type the stream does not carry is skipped, a broken payload is an error.
	if m, err := k.decode(headers{"ce_type": "shop.events.v1.OrderPaid"}, []byte(`{}`)); m != nil || err != nil {
		t.Errorf("foreign type: %v %v", m, err)
	}
	if _, err := k.decode(headers{"ce_type": "shop.events.v1.CartItemAdded"}, []byte(`{"item":`)); err == nil {
		t.Error("broken payload decoded")
	}
	if _, err := k.decode(headers{"ce_type": "shop.events.v1.CartItemAdded"}, []byte(`{}`)); err == nil {
		t.Error("payload without its resource decoded")
	}
	// Every field present, zeros too, as on Kafka.
	_, data, _ = PayloadJSON(&cartv1.WatchCartResponse{Type: "shop.events.v1.CartItemAdded",
		Event: &cartv1.WatchCartResponse_ItemAdded{ItemAdded: &cartv1.CartItem{ItemId: 3}}})
	if !strings.Contains(string(data), `"quantity":0`) {
		t.Errorf("PayloadJSON leaves out a zero field: %s", data)
	}
	if _, _, ok := PayloadJSON(&cartv1.WatchCartResponse{}); ok {
		t.Error("a heartbeat (no event) has a payload")
	}
}

func TestDispatchFiltersByOwner(t *testing.T) {
	t.Parallel()
	h := testHub(t, 4)
	f := h.feeds["shop.cart.v1"]
	subs := map[int64]*sub{}
	for _, u := range []int64{7, 8, 70} {
		s := &sub{user: u, ch: make(chan event, 4), slow: make(chan struct{}), from: position{0: 0, 1: 0}}
		subs[u] = s
		f.subs[s] = struct{}{}
	}
	body := `{"item":{"item_id":"1","user_id":"7","product_id":"9","quantity":1}}`
	h.dispatch(f, record(0, 0, "7", "shop.events.v1.CartItemAdded", body))
	if len(subs[7].ch) != 1 || len(subs[8].ch) != 0 || len(subs[70].ch) != 0 {
		t.Fatalf("queued 7:%d 8:%d 70:%d, want only user 7's", len(subs[7].ch), len(subs[8].ch), len(subs[70].ch))
	}
	ev := <-subs[7].ch
	if ev.pos[0] != 1 {
		t.Errorf("position after the record %v, want partition 0 at 1", ev.pos)
	}
	// A record before a subscriber's start position is not sent to it.
	subs[8].from = position{1: 5}
	h.dispatch(f, record(1, 4, "8", "shop.events.v1.CartItemAdded", body))
	if len(subs[8].ch) != 0 {
		t.Error("a record before the subscriber's position was sent")
	}
	h.dispatch(f, record(1, 5, "8", "shop.events.v1.CartItemAdded", body))
	if len(subs[8].ch) != 1 {
		t.Error("a record at the subscriber's position was not sent")
	}
}

func TestDispatchCutsSlowSubscriberOnly(t *testing.T) {
	t.Parallel()
	h := testHub(t, 2)
	f := h.feeds["shop.stock.v1"]
	slow := &sub{ch: make(chan event, 2), slow: make(chan struct{})}
	fast := &sub{ch: make(chan event, 2), slow: make(chan struct{}), products: map[string]bool{"5": true}}
	f.subs[slow], f.subs[fast] = struct{}{}, struct{}{}
	body := `{"item":{"product_id":"5","product_name":"x","quantity":1}}`
	for i := range 3 {
		h.dispatch(f, record(0, int64(i), "5", "shop.events.v1.StockUpdated", body))
		if i < 2 {
			<-fast.ch // the fast one keeps up
		}
	}
	select {
	case <-slow.slow:
	default:
		t.Fatal("a subscriber whose buffer overflowed was not cut off")
	}
	if _, ok := f.subs[slow]; ok {
		t.Error("the cut subscriber is still subscribed")
	}
	select {
	case <-fast.slow:
		t.Fatal("the subscriber that kept up was cut off")
	default:
	}
	if _, ok := f.subs[fast]; !ok || len(fast.ch) != 1 {
		t.Error("the subscriber that kept up lost its event")
	}
	// The product filter: another product's record is not sent.
	h.dispatch(f, record(0, 3, "6", "shop.events.v1.StockUpdated", strings.ReplaceAll(body, `"5"`, `"6"`)))
	if len(fast.ch) != 1 {
		t.Error("a record of another product was sent")
	}
}

func TestKeysOf(t *testing.T) {
	t.Parallel()
	h := testHub(t, 1)
	u, p := keysOf(h.kinds[WatchCart], &cartv1.WatchCartRequest{UserId: 4})
	if u != 4 || p != nil {
		t.Errorf("cart keys %d %v", u, p)
	}
	_, p = keysOf(h.kinds[WatchStock], &stockv1.WatchStockRequest{ProductIds: []int64{3, 4}})
	if len(p) != 2 || !p["3"] || !p["4"] {
		t.Errorf("stock keys %v", p)
	}
	if tokenOf(proto.Message(&stockv1.WatchStockRequest{ResumeToken: "x"})) != "x" {
		t.Error("tokenOf")
	}
}

func TestCaps(t *testing.T) {
	t.Parallel()
	h := testHub(t, 1)
	h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser = 3, 2
	h.perUser = map[string]int{}
	for i, who := range []string{"a", "a", "a", "b", "c"} {
		err := h.acquire(who)
		wantErr := i == 2 || i == 4 // a's third; the instance's fourth
		if (err != nil) != wantErr || (err != nil && status.Code(err) != codes.ResourceExhausted) {
			t.Errorf("stream %d of %s: %v, want refused %v", i, who, err, wantErr)
		}
	}
	h.release("a")
	if err := h.acquire("c"); err != nil {
		t.Errorf("after a release: %v", err)
	}
	if h.Streams() != 3 {
		t.Errorf("%d streams, want 3", h.Streams())
	}
}

// serve runs h.Serve for a cart stream of user 7 in the background.
func serve(h *Hub, ctx context.Context) (<-chan error, chan proto.Message) {
	sent := make(chan proto.Message, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- h.Serve(ctx, WatchCart, &cartv1.WatchCartRequest{UserId: 7}, func(m proto.Message) error {
			sent <- m
			return nil
		})
	}()
	return errc, sent
}

func waitSubscribed(t *testing.T, f *feed) {
	t.Helper()
	for range 200 {
		f.mu.Lock()
		n := len(f.subs)
		f.mu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no subscriber")
}

func TestServeEnds(t *testing.T) {
	t.Parallel()
	body := `{"item":{"item_id":"1","user_id":"7","product_id":"9","quantity":1}}`
	t.Run("token expiry", func(t *testing.T) {
		t.Parallel()
		h := testHub(t, 4)
		h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser, h.cfg.MaxAge = 10, 10, time.Hour
		h.perUser, h.stop = map[string]int{}, make(chan struct{})
		ctx := reqinfo.WithCaller(context.Background(), &reqinfo.Caller{UserID: 7, Expiry: time.Now().Add(300 * time.Millisecond)})
		errc, sent := serve(h, ctx)
		waitSubscribed(t, h.feeds["shop.cart.v1"])
		h.dispatch(h.feeds["shop.cart.v1"], record(0, 0, "7", "shop.events.v1.CartItemAdded", body))
		if m := (<-sent).(*cartv1.WatchCartResponse); m.GetType() != "" || m.GetResumeToken() == "" {
			t.Errorf("first message %v, want the start position alone", m)
		}
		m := (<-sent).(*cartv1.WatchCartResponse)
		pos, err := decodeToken("shop.cart.v1", m.GetResumeToken())
		if err != nil || pos[0] != 1 || pos[1] != 0 {
			t.Errorf("resume token %q: %v %v, want partition 0 at 1", m.GetResumeToken(), pos, err)
		}
		select {
		case err := <-errc:
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("ended with %v, want UNAUTHENTICATED", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the stream outlived its token")
		}
		if h.Streams() != 0 {
			t.Error("the ended stream still counts")
		}
	})
	t.Run("call deadline", func(t *testing.T) {
		t.Parallel()
		h := testHub(t, 4)
		h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser, h.cfg.MaxAge = 10, 10, time.Hour
		h.perUser, h.stop = map[string]int{}, make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		errc, _ := serve(h, ctx)
		if err := <-errc; status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("ended with %v, want DEADLINE_EXCEEDED (the caller's deadline, not the token's)", err)
		}
	})
	t.Run("drain", func(t *testing.T) {
		t.Parallel()
		h := testHub(t, 4)
		h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser, h.cfg.MaxAge = 10, 10, time.Hour
		h.perUser, h.stop = map[string]int{}, make(chan struct{})
		errc, _ := serve(h, context.Background())
		waitSubscribed(t, h.feeds["shop.cart.v1"])
		h.Drain()
		if err := <-errc; status.Code(err) != codes.Unavailable {
			t.Errorf("ended with %v, want UNAVAILABLE", err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		t.Parallel()
		h := testHub(t, 1)
		h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser, h.cfg.MaxAge = 10, 10, time.Hour
		h.perUser, h.stop = map[string]int{}, make(chan struct{})
		block := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			errc <- h.Serve(context.Background(), WatchCart, &cartv1.WatchCartRequest{UserId: 7}, func(proto.Message) error {
				<-block // never reads on
				return nil
			})
		}()
		f := h.feeds["shop.cart.v1"]
		waitSubscribed(t, f)
		for i := range 3 {
			h.dispatch(f, record(0, int64(i), "7", "shop.events.v1.CartItemAdded", body))
		}
		close(block)
		if err := <-errc; status.Code(err) != codes.ResourceExhausted {
			t.Errorf("ended with %v, want RESOURCE_EXHAUSTED", err)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		t.Parallel()
		h := testHub(t, 1)
		h.perUser, h.stop = map[string]int{}, make(chan struct{})
		err := h.Serve(context.Background(), WatchCart, &cartv1.WatchCartRequest{UserId: 7, ResumeToken: "x"}, func(proto.Message) error { return nil })
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad token: %v, want INVALID_ARGUMENT", err)
		}
	})
}

// TestCloseWithoutKafka: a hub whose brokers never answer starts, refuses
// streams as not ready, and closes promptly.
func TestCloseWithoutKafka(t *testing.T) {
	t.Parallel()
	h, err := New(Config{Brokers: []string{"127.0.0.1:1"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Serve(context.Background(), WatchStock, &stockv1.WatchStockRequest{}, func(proto.Message) error { return nil })
	if status.Code(err) != codes.Unavailable {
		t.Errorf("stream before Kafka: %v, want UNAVAILABLE", err)
	}
	start := time.Now()
	h.Close()
	if d := time.Since(start); d > closeWait+time.Second {
		t.Errorf("Close took %v", d)
	}
	if h.Streams() != 0 {
		t.Errorf("%d streams after a refusal", h.Streams())
	}
}

// TestServePosition: a stream is sent its position, without an event, at
// once and after each quiet heartbeat interval; records filtered out for
// it advance that position, records waiting in its buffer do not.
func TestServePosition(t *testing.T) {
	t.Parallel()
	body := func(user string) string {
		return `{"item":{"item_id":"1","user_id":"` + user + `","product_id":"9","quantity":1}}`
	}
	h := testHub(t, 4)
	h.cfg.MaxStreams, h.cfg.MaxStreamsPerUser, h.cfg.MaxAge, h.cfg.Heartbeat = 10, 10, time.Hour, 100*time.Millisecond
	h.perUser, h.stop = map[string]int{}, make(chan struct{})
	f := h.feeds["shop.cart.v1"]
	errc, sent := serve(h, context.Background())
	next := func(wantEvent bool) position {
		t.Helper()
		select {
		case m := <-sent:
			r := m.(*cartv1.WatchCartResponse)
			if (r.GetType() != "") != wantEvent || (r.GetItemAdded() != nil) != wantEvent {
				t.Fatalf("message %v, want an event: %v", r, wantEvent)
			}
			pos, err := decodeToken("shop.cart.v1", r.GetResumeToken())
			if err != nil {
				t.Fatalf("token %q: %v", r.GetResumeToken(), err)
			}
			return pos
		case err := <-errc:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing sent")
		}
		return nil
	}
	if pos := next(false); pos[0] != 0 || pos[1] != 0 {
		t.Errorf("start position %v, want the feed's {0:0 1:0}", pos)
	}
	waitSubscribed(t, f)
	// Another user's records: not sent, but the position moves past them.
	h.dispatch(f, record(0, 0, "8", "shop.events.v1.CartItemAdded", body("8")))
	h.dispatch(f, record(1, 0, "8", "shop.events.v1.CartItemAdded", body("8")))
	if pos := next(false); pos[0] != 1 || pos[1] != 1 {
		t.Errorf("heartbeat position %v, want {0:1 1:1} (past the records filtered out)", pos)
	}
	h.dispatch(f, record(0, 1, "7", "shop.events.v1.CartItemAdded", body("7")))
	if pos := next(true); pos[0] != 2 || pos[1] != 1 {
		t.Errorf("event position %v, want {0:2 1:1}", pos)
	}
	if pos := next(false); pos[0] != 2 || pos[1] != 1 {
		t.Errorf("position after the event %v, want {0:2 1:1}", pos)
	}

	// A record waiting in the buffer holds the position where it is.
	s := &sub{user: 9, ch: make(chan event, 4), slow: make(chan struct{})}
	f.mu.Lock()
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	h.dispatch(f, record(1, 1, "9", "shop.events.v1.CartItemAdded", body("9")))
	cur := position{0: 2, 1: 1}
	if got := f.here(s, cur); got[1] != 1 {
		t.Errorf("position with a record waiting %v, want %v", got, cur)
	}
	<-s.ch
	if got := f.here(s, cur); got[1] != 2 {
		t.Errorf("position with nothing waiting %v, want partition 1 at 2", got)
	}
	// A subscriber cut off keeps its own position.
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
	h.dispatch(f, record(0, 2, "9", "shop.events.v1.CartItemAdded", body("9")))
	if got := f.here(s, cur); got[0] != 2 {
		t.Errorf("position of a cut subscriber %v, want %v", got, cur)
	}
}

func TestConfigHeartbeat(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for hb, ok := range map[time.Duration]bool{0: true, MinHeartbeat: true, time.Minute: true, time.Millisecond: false, -time.Second: false} {
		c := Config{Brokers: []string{"127.0.0.1:1"}, Logger: log, Heartbeat: hb}
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("heartbeat %s: %v, want ok %v", hb, err, ok)
		}
	}
}
