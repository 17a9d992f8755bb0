package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	id, event, data string
}

// sseStream is an open Server-Sent Events response, read in the
// background; events arrive on events, the end of the body closes it, and
// the ids of dispatches without data (the stream's positions) arrive on
// positions (the oldest dropped when nobody reads them).
type sseStream struct {
	events    chan sseEvent
	positions chan string
	cancel    context.CancelFunc
	header    http.Header
}

// openSSE opens path with Accept: text/event-stream, retrying while the
// gateway's live feed is not readable yet (503); other statuses are
// returned with the body for the caller to check.
func openSSE(tb testing.TB, baseURL, path, token, lastEventID string) (*sseStream, int, []byte) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, "GET", baseURL+path, nil)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", harness.Bearer(token))
		}
		if lastEventID != "" {
			req.Header.Set("Last-Event-ID", lastEventID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			tb.Fatalf("GET %s: %v", path, err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			resp.Body.Close()
			cancel()
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			return nil, resp.StatusCode, body
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			tb.Errorf("GET %s: Content-Type %q, want text/event-stream", path, ct)
		}
		s := &sseStream{events: make(chan sseEvent, 1024), positions: make(chan string, 64), cancel: cancel, header: resp.Header}
		tb.Cleanup(cancel)
		go func() {
			defer close(s.events)
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			var ev sseEvent
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimRight(line, "\n")
				switch {
				case line == "":
					if ev.event != "" {
						s.events <- ev
					} else if ev.id != "" {
						select {
						case s.positions <- ev.id:
						default:
							select {
							case <-s.positions:
							default:
							}
							s.positions <- ev.id
						}
					}
					ev = sseEvent{}
				case strings.HasPrefix(line, ":"): // comment (heartbeat)
				case strings.HasPrefix(line, "id: "):
					ev.id = strings.TrimPrefix(line, "id: ")
				case strings.HasPrefix(line, "event: "):
					ev.event = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					ev.data += strings.TrimPrefix(line, "data: ")
				}
			}
		}()
		return s, http.StatusOK, nil
	}
}

// next waits for the stream's next event.
func (s *sseStream) next(tb testing.TB, timeout time.Duration) (sseEvent, bool) {
	tb.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(timeout):
		return sseEvent{}, false
	}
}

// itemOf decodes a cart event's data: its item's user and item ids.
func itemOf(tb testing.TB, ev sseEvent) (user, item string) {
	tb.Helper()
	var m struct {
		Item struct {
			UserID string `json:"user_id"`
			ItemID string `json:"item_id"`
		} `json:"item"`
	}
	if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
		tb.Fatalf("event data %q: %v", ev.data, err)
	}
	return m.Item.UserID, m.Item.ItemID
}

func addItem(tb testing.TB, s *harness.Stack, user, product int64) string {
	tb.Helper()
	_, m := do(tb, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"product_id":%d,"quantity":1}`, product),
		"Authorization", harness.Bearer(s.Token(tb, user, "")))
	id, _ := m["item_id"].(string)
	if id == "" {
		tb.Fatalf("add: no item_id in %v", m)
	}
	return id
}

// TestLiveUpdates: a cart change made over REST reaches its owner's SSE
// and gRPC streams and no other user's; a reconnect with Last-Event-ID
// gets exactly the events it missed, on this gateway and on another
// instance; callers who may not watch a cart are refused before anything
// is streamed.
func TestLiveUpdates(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	product := createProduct(t, s, "live", 1000, 100)

	users := make([]int64, 6)
	for i := range users {
		users[i] = newID()
	}
	owner := users[0]
	streams := map[int64]*sseStream{}
	for _, u := range users {
		st, code, body := openSSE(t, s.RESTURL(), "/cart/events", s.Token(t, u, ""), "")
		if st == nil {
			t.Fatalf("user %d: GET /cart/events: %d %s", u, code, body)
		}
		streams[u] = st
	}
	// The same owner over gRPC.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gs, err := newClients(t, s).cart.WatchCart(harness.WithToken(ctx, s.Token(t, owner, "")), &cartv1.WatchCartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gs.Header(); err != nil {
		t.Fatalf("WatchCart: %v", err)
	}

	// Each user adds one item; each stream sees exactly its user's.
	itemOfUser := map[int64]string{}
	for _, u := range users {
		itemOfUser[u] = addItem(t, s, u, product)
	}
	var lastID string
	for _, u := range users {
		ev, ok := streams[u].next(t, 20*time.Second)
		if !ok {
			t.Fatalf("user %d: no event on the SSE stream", u)
		}
		gotUser, gotItem := itemOf(t, ev)
		if ev.event != "shop.events.v1.CartItemAdded" || gotUser != str(u) || gotItem != itemOfUser[u] || ev.id == "" {
			t.Errorf("user %d: event %+v, want its own CartItemAdded of item %s", u, ev, itemOfUser[u])
		}
		if u == owner {
			lastID = ev.id
		}
	}
	msg, err := gs.Recv()
	for err == nil && msg.GetType() == "" { // the stream's start position
		msg, err = gs.Recv()
	}
	if err != nil {
		t.Fatalf("WatchCart Recv: %v", err)
	}
	if msg.GetItemAdded().GetUserId() != owner || str(msg.GetItemAdded().GetItemId()) != itemOfUser[owner] ||
		msg.GetType() != "shop.events.v1.CartItemAdded" || msg.GetResumeToken() == "" || msg.GetId() == "" {
		t.Errorf("WatchCart got %v, want the owner's CartItemAdded", msg)
	}
	// No stream got anything else (another user's event would be here).
	for _, u := range users {
		if ev, ok := streams[u].next(t, time.Second); ok {
			t.Errorf("user %d: unexpected event %+v", u, ev)
		}
	}

	// The owner goes away, two items are added meanwhile, and the owner
	// comes back with the last id it saw: both, once each, in order.
	streams[owner].cancel()
	missed := []string{addItem(t, s, owner, product), addItem(t, s, owner, product)}
	resumed := func(name, base string) {
		st, code, body := openSSE(t, base, "/cart/events", s.Token(t, owner, ""), lastID)
		if st == nil {
			t.Fatalf("%s: resume: %d %s", name, code, body)
		}
		defer st.cancel()
		for i, want := range missed {
			ev, ok := st.next(t, 20*time.Second)
			if !ok {
				t.Fatalf("%s: missed event %d not replayed", name, i)
			}
			if _, item := itemOf(t, ev); item != want {
				t.Errorf("%s: replayed item %s, want %s", name, item, want)
			}
		}
		if ev, ok := st.next(t, 2*time.Second); ok {
			t.Errorf("%s: event %+v after the missed ones (repeated?)", name, ev)
		}
	}
	resumed("same gateway", s.RESTURL())

	// Refusals, before anything is streamed.
	other := users[1]
	if _, code, body := openSSE(t, s.RESTURL(), "/cart/events?user_id="+str(owner), s.Token(t, other, ""), ""); code != http.StatusForbidden {
		t.Errorf("another user's cart: %d %s, want 403", code, body)
	}
	if _, code, _ := openSSE(t, s.RESTURL(), "/cart/events", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if _, code, body := openSSE(t, s.RESTURL(), "/cart/events", s.Token(t, owner, ""), "not-a-token"); code != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d %s, want 400", code, body)
	}
	if _, code, body := openSSE(t, s.RESTURL(), "/order/events", s.Token(t, owner, ""), lastID); code != http.StatusBadRequest {
		t.Errorf("a cart token on the order stream: %d %s, want 400", code, body)
	}
	_, err = func() (any, error) {
		st, err := newClients(t, s).cart.WatchCart(harness.WithToken(ctx, s.Token(t, other, "")), &cartv1.WatchCartRequest{UserId: owner})
		if err != nil {
			return nil, err
		}
		return st.Recv()
	}()
	wantCode(t, "gRPC WatchCart of another user", err, codes.PermissionDenied)

	// Without Accept: text/event-stream, the stream is newline-delimited
	// JSON (grpc-gateway's {"result": ...} lines).
	req, _ := http.NewRequestWithContext(ctx, "GET", s.RESTURL()+"/cart/events", nil)
	req.Header.Set("Authorization", harness.Bearer(s.Token(t, owner, "")))
	req.Header.Set("Last-Event-ID", lastID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || !strings.Contains(line, `"result"`) || !strings.Contains(line, missed[0]) {
		t.Errorf("NDJSON first line %q (%v), want the first missed event", line, err)
	}

	// The order stream: the owner pays (three items in the cart) and sees
	// the order turn PAID.
	orders, code, body := openSSE(t, s.RESTURL(), "/order/events", s.Token(t, owner, ""), "")
	if orders == nil {
		t.Fatalf("GET /order/events: %d %s", code, body)
	}
	waitCart(t, s, owner, 3)
	_, order := do(t, s, http.StatusOK, "POST", "/order/pay", "{}", "Authorization", harness.Bearer(s.Token(t, owner, "")))
	ev, ok := orders.next(t, 20*time.Second)
	if !ok || ev.event != "shop.events.v1.OrderPaid" || !strings.Contains(ev.data, `"status":"ORDER_STATUS_PAID"`) ||
		!strings.Contains(ev.data, `"order_id":"`+fmt.Sprint(order["order_id"])+`"`) {
		t.Errorf("order stream: %+v (ok %v), want the OrderPaid of %v", ev, ok, order["order_id"])
	}

	// The public stock stream, without a token, filtered by product.
	watched, unwatched := createProduct(t, s, "watched", 5, 1), createProduct(t, s, "unwatched", 5, 1)
	stock, code, body := openSSE(t, s.RESTURL(), "/stock/events?product_ids="+str(watched), "", "")
	if stock == nil {
		t.Fatalf("GET /stock/events: %d %s", code, body)
	}
	do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":9}`, unwatched))
	do(t, s, http.StatusOK, "POST", "/stock/update", fmt.Sprintf(`{"product_id":%d,"quantity":7}`, watched))
	// The creation may come first (events are published after the answer).
	for {
		ev, ok := stock.next(t, 20*time.Second)
		if !ok {
			t.Fatal("stock stream: the watched product's update did not arrive")
		}
		if !strings.Contains(ev.data, `"product_id":"`+str(watched)+`"`) {
			t.Fatalf("stock stream: %+v, an event of a product not watched", ev)
		}
		if ev.event == "shop.events.v1.StockUpdated" {
			if !strings.Contains(ev.data, `"quantity":7`) {
				t.Errorf("stock stream: %+v, want quantity 7", ev)
			}
			break
		}
	}

	// Another gateway instance (another stack on the same broker and
	// topics) continues from the same id.
	s2 := harness.Start(t, harness.Options{})
	resumed("second gateway", s2.RESTURL())

	// A graceful stop ends open streams with a resumable UNAVAILABLE
	// rather than holding the drain.
	st, code, body := openSSE(t, s2.RESTURL(), "/cart/events", s.Token(t, owner, ""), "")
	if st == nil {
		t.Fatalf("GET /cart/events: %d %s", code, body)
	}
	stopped := time.Now()
	s2.StopGateway()
	if d := time.Since(stopped); d > 10*time.Second {
		t.Errorf("the gateway took %v to stop with a stream open", d)
	}
	if ev, ok := st.next(t, 5*time.Second); !ok || ev.event != "error" || !strings.Contains(ev.data, `"code":14`) {
		t.Errorf("stream at shutdown: %+v (ok %v), want an error event with UNAVAILABLE", ev, ok)
	}
}

// TestLiveSlowSubscriberIsCut: a gRPC client that stops reading is ended
// with RESOURCE_EXHAUSTED once it falls a bounded number of events behind,
// while a client of the same events that keeps up gets every one.
func TestLiveSlowSubscriberIsCut(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-live-buffer", "100"}})
	// A long name makes each event large, so that the transport's buffers
	// fill after a few hundred events. The buffer is well above one Kafka
	// fetch's burst, which a client that keeps up must absorb.
	product := createProduct(t, s, strings.Repeat("n", 500), 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	open := func() stockv1.StockService_WatchStockClient {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		for {
			st, err := stockv1.NewStockServiceClient(conn).WatchStock(ctx, &stockv1.WatchStockRequest{ProductIds: []int64{product}})
			if err == nil {
				if _, err = st.Header(); err == nil {
					return st
				}
			}
			if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
				t.Fatalf("WatchStock: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	slow, fast := open(), open()
	const n = 800
	got := 0
	var fastErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for got < n {
			var m *stockv1.WatchStockResponse
			if m, fastErr = fast.Recv(); fastErr != nil {
				return
			}
			if m.GetType() != "" { // not a position
				got++
			}
		}
	}()
	c := newClients(t, s)
	var werr error
	var wmu sync.Mutex
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := w; i < n; i += 4 {
				if _, err := c.stock.SetStockLevel(ctx, &stockv1.SetStockLevelRequest{ProductId: product, Quantity: int32(i + 1)}); err != nil {
					wmu.Lock()
					werr = err
					wmu.Unlock()
					return
				}
			}
		}()
	}
	writers.Wait()
	if werr != nil {
		t.Fatalf("SetStockLevel: %v", werr)
	}
	wg.Wait()
	if fastErr != nil || got != n {
		t.Fatalf("the client that kept up got %d of %d events (%v)", got, n, fastErr)
	}
	// The slow one now reads: what was in flight, then the end.
	var err error
	read := 0
	for err == nil {
		_, err = slow.Recv()
		read++
	}
	t.Logf("the slow client read %d of %d events before its end", read-1, n)
	if status.Code(err) != codes.ResourceExhausted || read >= n {
		t.Errorf("the slow client read %d events and ended with %v, want RESOURCE_EXHAUSTED before the end", read, err)
	}
	if errors.Is(err, io.EOF) {
		t.Error("the slow client's stream ended OK")
	}
}

// position waits for the stream's next position (an id without data).
func (s *sseStream) position(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	select {
	case id := <-s.positions:
		return id
	case <-time.After(timeout):
		tb.Fatal("no position on the stream")
		return ""
	}
}

// TestLivePositionWithoutEvents: a client that was shown no event still
// has a position (sent at the start and with each heartbeat, past the
// other users' events it was not shown); after a disconnect and a
// mutation, resuming from it gets that event exactly once, over SSE and
// gRPC, on this gateway and on another instance.
func TestLivePositionWithoutEvents(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-live-heartbeat", "300ms"}})
	product := createProduct(t, s, "quiet", 1000, 100)
	user, other := newID(), newID()

	st, code, body := openSSE(t, s.RESTURL(), "/cart/events", s.Token(t, user, ""), "")
	if st == nil {
		t.Fatalf("GET /cart/events: %d %s", code, body)
	}
	start := st.position(t, 10*time.Second)
	// The gRPC stream's first message is its position, without an event.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := newClients(t, s)
	gctx, gcancel := context.WithCancel(harness.WithToken(ctx, s.Token(t, user, "")))
	gs, err := c.cart.WatchCart(gctx, &cartv1.WatchCartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := gs.Recv()
	if err != nil || first.GetType() != "" || first.GetEvent() != nil || first.GetResumeToken() == "" {
		t.Fatalf("WatchCart first message %v (%v), want a position alone", first, err)
	}

	// Another user's event moves the position on without being shown.
	addItem(t, s, other, product)
	var pos string
	eventually(t, 20*time.Second, func() string {
		if pos = st.position(t, 5*time.Second); pos == start {
			return "the position did not move past the other user's event"
		}
		return ""
	})
	if ev, ok := st.next(t, time.Second); ok {
		t.Fatalf("another user's event was shown: %+v", ev)
	}
	st.cancel()
	gcancel()

	// Gone; the user's own change; back from the last position.
	item := addItem(t, s, user, product)
	once := func(name, base string) {
		t.Helper()
		st, code, body := openSSE(t, base, "/cart/events", s.Token(t, user, ""), pos)
		if st == nil {
			t.Fatalf("%s: resume: %d %s", name, code, body)
		}
		defer st.cancel()
		ev, ok := st.next(t, 20*time.Second)
		if !ok {
			t.Fatalf("%s: the event made while away did not arrive", name)
		}
		if u, got := itemOf(t, ev); u != str(user) || got != item {
			t.Errorf("%s: event %+v, want the user's item %s", name, ev, item)
		}
		if ev, ok := st.next(t, 2*time.Second); ok {
			t.Errorf("%s: a second event %+v (repeated, or another user's)", name, ev)
		}
	}
	once("same gateway", s.RESTURL())

	// gRPC, from the position it was given at its start: the other user's
	// event is not in it, the user's own arrives once.
	gs, err = c.cart.WatchCart(harness.WithToken(ctx, s.Token(t, user, "")), &cartv1.WatchCartRequest{ResumeToken: first.GetResumeToken()})
	if err != nil {
		t.Fatal(err)
	}
	var events []*cartv1.WatchCartResponse
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		m, err := gs.Recv()
		if err != nil {
			t.Fatalf("WatchCart resumed: %v", err)
		}
		if m.GetType() != "" {
			events = append(events, m)
		}
	}
	if len(events) != 1 || str(events[0].GetItemAdded().GetItemId()) != item {
		t.Errorf("gRPC resumed from its start position: %v, want the one item %s", events, item)
	}

	// NDJSON: the first line is the position, a result without an event.
	req, _ := http.NewRequestWithContext(ctx, "GET", s.RESTURL()+"/cart/events", nil)
	req.Header.Set("Authorization", harness.Bearer(s.Token(t, user, "")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	var head struct {
		Result map[string]any `json:"result"`
	}
	if err != nil || json.Unmarshal([]byte(line), &head) != nil || head.Result["resume_token"] == nil || head.Result["resume_token"] == "" ||
		head.Result["type"] != "" || head.Result["item_added"] != nil || head.Result["item_removed"] != nil {
		t.Errorf("NDJSON first line %q (%v), want a result with only the position", line, err)
	}

	s2 := harness.Start(t, harness.Options{})
	once("second gateway", s2.RESTURL())
}
