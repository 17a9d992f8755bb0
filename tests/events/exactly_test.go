package events_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/tests/harness"
)

// TestCommittedChangesHaveOneEvent is the exactly-once fault test: the
// gateway is SIGKILLed three times while 8 clients send mutations of each
// kind whose committed changes can be read back from the services
// (CreateStock, DeleteStock, AddCartItem), over REST and gRPC, with and
// without Idempotency-Key, and never retry. Afterwards the set of changes
// the services committed must equal the set of events in Kafka by subject,
// each subject with one ce_id: a change committed while the gateway died
// (answered to nobody) has its event too, and nothing has two. It runs
// under both outbox sync policies.
func TestCommittedChangesHaveOneEvent(t *testing.T) {
	for _, policy := range []string{"always", "interval"} {
		t.Run("outbox-sync="+policy, func(t *testing.T) {
			committedChangesHaveOneEvent(t, policy)
		})
	}
}

func committedChangesHaveOneEvent(t *testing.T, policy string) {
	const (
		clients   = 8
		kills     = 3
		killEvery = 3 * time.Second
		deletable = 240
	)
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-outbox-sync=" + policy}})
	reader := harness.NewEventReader(t, harness.TopicStock, harness.TopicCart)
	base := int64(1)<<52 + rand.Int64N(1<<40)<<12
	var nextID atomic.Int64
	nextID.Store(base)
	create := func(tb testing.TB, quantity int) int64 {
		id := nextID.Add(1)
		body := fmt.Sprintf(`{"product_id":%d,"product_name":"once %d","quantity":%d,"price_cents":1}`, id, id, quantity)
		if st, _, b := s.Do(tb, "POST", "/stock", body); st != http.StatusOK {
			tb.Fatalf("create product %d: %d %v", id, st, b)
		}
		return id
	}
	pool := []int64{create(t, 1_000_000), create(t, 1_000_000)}
	toDelete := make(chan int64, deletable)
	for range deletable {
		toDelete <- create(t, 1)
	}
	users := make([]int64, clients)
	for i := range users {
		users[i] = nextID.Add(1)
	}

	var (
		mu               sync.Mutex
		created, deleted []int64
		sent             atomic.Int64
	)
	conn := s.GRPCConn(t)
	stock, cart := stockv1.NewStockServiceClient(conn), cartv1.NewCartServiceClient(conn)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				viaGRPC, keyed := i%2 == 1, (i/2)%2 == 1
				key := ""
				if keyed {
					key = fmt.Sprintf("once-%d-%d-%d", base, w, i)
				}
				switch i % 3 {
				case 0:
					id := nextID.Add(1)
					mu.Lock()
					created = append(created, id)
					mu.Unlock()
					item := &stockv1.StockItem{ProductId: id, ProductName: "once", Quantity: 1, PriceCents: 1}
					if viaGRPC {
						_, _ = stock.CreateStock(callCtx(key), &stockv1.CreateStockRequest{Item: item})
					} else {
						rest(s, "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"once","quantity":1,"price_cents":1}`, id), key)
					}
				case 1:
					var id int64
					select {
					case id = <-toDelete:
					default:
						continue
					}
					mu.Lock()
					deleted = append(deleted, id)
					mu.Unlock()
					if viaGRPC {
						_, _ = stock.DeleteStock(callCtx(key), &stockv1.DeleteStockRequest{ProductId: id})
					} else {
						rest(s, "DELETE", "/stock/"+strconv.FormatInt(id, 10), "", key)
					}
				case 2:
					p := pool[i%len(pool)]
					if viaGRPC {
						_, _ = cart.AddCartItem(callCtx(key), &cartv1.AddCartItemRequest{UserId: users[w], ProductId: p, Quantity: 1})
					} else {
						rest(s, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, users[w], p), key)
					}
				}
				sent.Add(1)
			}
		})
	}
	for k := range kills {
		time.Sleep(killEvery)
		s.KillGateway()
		t.Logf("gateway killed (%d of %d) after %d mutations sent", k+1, kills, sent.Load())
		s.StartGateway()
	}
	time.Sleep(killEvery)
	stop()
	wg.Wait()

	// What the services committed.
	want := map[string]map[string]bool{
		"shop.events.v1.StockCreated":  {},
		"shop.events.v1.StockDeleted":  {},
		"shop.events.v1.CartItemAdded": {},
	}
	// The event keys of this test's mutations, by event type.
	ours := map[string]map[string]bool{}
	for typ := range want {
		ours[typ] = map[string]bool{}
	}
	for _, id := range created {
		ours["shop.events.v1.StockCreated"][strconv.FormatInt(id, 10)] = true
		if st, _, _ := s.Do(t, "GET", "/stock/"+strconv.FormatInt(id, 10), ""); st == http.StatusOK {
			want["shop.events.v1.StockCreated"][strconv.FormatInt(id, 10)] = true
		}
	}
	for _, id := range deleted {
		ours["shop.events.v1.StockDeleted"][strconv.FormatInt(id, 10)] = true
		if st, _, _ := s.Do(t, "GET", "/stock/"+strconv.FormatInt(id, 10), ""); st == http.StatusNotFound {
			want["shop.events.v1.StockDeleted"][strconv.FormatInt(id, 10)] = true
		}
	}
	for _, u := range users {
		ours["shop.events.v1.CartItemAdded"][strconv.FormatInt(u, 10)] = true
		_, _, m := s.Do(t, "GET", "/cart/fallback/"+strconv.FormatInt(u, 10), "")
		items, _ := m["items"].([]any)
		for _, it := range items {
			if id, ok := it.(map[string]any)["item_id"].(string); ok {
				want["shop.events.v1.CartItemAdded"][id] = true
			}
		}
	}
	total := 0
	for typ, subjects := range want {
		total += len(subjects)
		t.Logf("%s: %d committed", typ, len(subjects))
	}

	// The events, by type and subject, with their distinct ce_ids.
	got := func(evs []harness.Event) map[string]map[string]map[string]bool {
		out := map[string]map[string]map[string]bool{}
		for _, e := range evs {
			if !ours[e.Type()][e.Key] {
				continue
			}
			if out[e.Type()] == nil {
				out[e.Type()] = map[string]map[string]bool{}
			}
			subj := e.Headers["ce_subject"]
			if out[e.Type()][subj] == nil {
				out[e.Type()][subj] = map[string]bool{}
			}
			out[e.Type()][subj][e.Headers["ce_id"]] = true
		}
		return out
	}
	complete := func(evs []harness.Event) bool {
		g := got(evs)
		for typ, subjects := range want {
			for subj := range subjects {
				if len(g[typ][subj]) == 0 {
					return false
				}
			}
		}
		return true
	}
	// Left-over intents are resolved once they are older than the
	// gateway's resolve delay (its upstream timeout, 10 s).
	cctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	evs, err := reader.Collect(cctx, complete)
	cancel()
	if err != nil {
		t.Logf("collecting events: %v", err)
	}
	// Events of changes committed late are not waited for; give stragglers
	// (an extra event would be a failure) a moment to arrive.
	time.Sleep(2 * time.Second)
	evs = reader.Events()
	g := got(evs)
	for typ, subjects := range want {
		var missing, extra, twice []string
		for subj := range subjects {
			switch n := len(g[typ][subj]); {
			case n == 0:
				missing = append(missing, subj)
			case n > 1:
				twice = append(twice, subj)
			}
		}
		for subj := range g[typ] {
			if !subjects[subj] {
				extra = append(extra, subj)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing) > 0 {
			t.Errorf("%s: %d of %d committed changes have no event (first: %v)", typ, len(missing), len(subjects), first(missing, 5))
		}
		if len(extra) > 0 {
			t.Errorf("%s: %d events for changes the service did not commit (first: %v)", typ, len(extra), first(extra, 5))
		}
		if len(twice) > 0 {
			t.Errorf("%s: %d changes have events with different ce_ids (first: %v)", typ, len(twice), first(twice, 5))
		}
	}
	// Records of one ce_id read more than once: deliveries again, which
	// consumers drop by ce_id; reported, as what a kill costs them.
	seen := map[string]int{}
	for _, e := range evs {
		if ours[e.Type()][e.Key] {
			seen[e.Headers["ce_id"]]++
		}
	}
	again, changesAgain := 0, 0
	for _, n := range seen {
		if n > 1 {
			again += n - 1
			changesAgain++
		}
	}
	fmt.Printf("exactly-once (outbox-sync=%s): %d mutations sent, %d gateway kills, %d committed changes, %d events read, %d changes delivered again (%d extra records, same ce_id)\n",
		policy, sent.Load(), kills, total, len(evs), changesAgain, again)
	if total == 0 {
		t.Fatal("no change was committed: the load did not run")
	}
}

// callCtx is the context of one gRPC call of the load, with its
// Idempotency-Key when it has one.
func callCtx(key string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	time.AfterFunc(6*time.Second, cancel)
	if key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "idempotency-key", key)
	}
	return ctx
}

// rest sends one REST mutation of the load, ignoring its outcome (the
// gateway may be down).
func rest(s *harness.Stack, method, path, body, key string) {
	req, err := http.NewRequest(method, s.RESTURL()+path, strings.NewReader(body))
	if err != nil {
		return
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func first(xs []string, n int) []string { return xs[:min(n, len(xs))] }

// TestGracefulRestartDeliversNothingAgain: mutations, a graceful stop of the
// gateway (SIGTERM: drain, flush) and a start on the same outbox and intent
// log, more mutations: every change has one event record, none delivered a
// second time (the restart resolves no intent whose events were stored).
func TestGracefulRestartDeliversNothingAgain(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	reader := harness.NewEventReader(t, harness.TopicStock)
	base := int64(1)<<52 + rand.Int64N(1<<40)<<12
	const before, after = 60, 20
	create := func(i int) {
		id := base + int64(i)
		body := fmt.Sprintf(`{"product_id":%d,"product_name":"restart %d","quantity":1,"price_cents":1}`, id, i)
		var headers []string
		if i%2 == 0 {
			headers = []string{"Idempotency-Key", fmt.Sprintf("restart-%d", id)}
		}
		if st, _, b := s.Do(t, "POST", "/stock", body, headers...); st != http.StatusOK {
			t.Fatalf("create product %d: %d %v", id, st, b)
		}
	}
	for i := range before {
		create(i)
	}
	s.StopGateway()
	s.StartGateway()
	for i := before; i < before+after; i++ {
		create(i)
	}
	// Left-over intents would be open now, and resolved (and evented again)
	// after their deadline; wait until none is open and all is published.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, ready := s.Readiness(t)
		check, _ := ready["outbox"].(map[string]any)
		ob, _ := check["detail"].(map[string]any)
		if ob != nil && fmt.Sprint(ob["intents"]) == "0" && fmt.Sprint(ob["depth"]) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("intents or events still pending after 60s: %v", ready)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	ours := func(e harness.Event) bool {
		id, err := strconv.ParseInt(e.Key, 10, 64)
		return err == nil && id >= base && id < base+before+after
	}
	evs := harness.Filter(reader.Events(), ours)
	records := map[string]int{}
	for _, e := range evs {
		records[e.Headers["ce_id"]]++
	}
	again := 0
	for _, n := range records {
		again += n - 1
	}
	fmt.Printf("graceful restart: %d changes, %d event records, %d delivered again\n", before+after, len(evs), again)
	if len(records) != before+after {
		t.Errorf("%d distinct events for %d changes", len(records), before+after)
	}
	if again != 0 {
		t.Errorf("%d event records delivered a second time after a graceful restart, want 0", again)
	}
}
