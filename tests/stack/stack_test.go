// Package stack runs the shop scaled out as a cluster would run it, on one
// machine: gateways in front of several instances of each service, the
// instances of a service sharing one PostgreSQL database, and the broker
// (harness.StartCluster). Many users run the seed's journey (browse, add to
// cart, view the cart until the add has reached B, pay) through the
// gateways; afterwards nothing may be oversold, every committed mutation
// has exactly one event (deduplicated by ce_id), and every cart on B equals
// its master copy on A.
//
// The test runs a short load on 2 gateways and 2 instances. With
// STACK_BENCH=1 (`make bench-stack`) it runs each shape of
// STACK_SHAPES (default "1x1 2x2": gateways x instances) for
// STACK_DURATION (20s) with STACK_USERS (48) concurrent users (services'
// extra environment: STACK_SERVICE_ENV, "K=V K=V") and prints
// journeys/s, p50/p99 per step and the ratio to the first shape.
package stack

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// The journey's steps, in order.
const (
	stepBrowse = iota
	stepAdd
	stepView
	stepPay
	numSteps
)

var stepNames = [numSteps]string{"browse (GET /stock/{id})", "add (POST /cart/add)", "view cart until synced", "pay (POST /order/pay)"}

const (
	// plentyProducts have more stock than any run takes.
	plentyProducts = 8
	plentyStock    = 1_000_000
	// syncTimeout bounds the wait for a change to travel between the
	// services over Kafka.
	syncTimeout = 30 * time.Second
)

type shape struct{ gateways, instances int }

func (s shape) String() string {
	return fmt.Sprintf("%d gateways x %d instances", s.gateways, s.instances)
}

type config struct {
	bench  bool
	scarce int // units of the scarce product, which runs out
	// One journey in scarceEvery buys the scarce product: its buyers race
	// for the last units when they pay.
	scarceEvery int
	shapes      []shape
	duration    time.Duration
	users       int
	env         []string // extra environment of the services
}

func loadConfig(tb testing.TB) config {
	tb.Helper()
	if os.Getenv("STACK_BENCH") != "1" {
		return config{shapes: []shape{{2, 2}}, duration: 5 * time.Second, users: 12, scarce: 3, scarceEvery: 2}
	}
	cfg := config{bench: true, duration: 20 * time.Second, users: 48, scarce: 25, scarceEvery: 5}
	if v := os.Getenv("STACK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			tb.Fatalf("STACK_DURATION=%q: want a positive duration", v)
		}
		cfg.duration = d
	}
	if v := os.Getenv("STACK_USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1000 {
			tb.Fatalf("STACK_USERS=%q: want 1 to 1000", v)
		}
		cfg.users = n
	}
	cfg.env = strings.Fields(os.Getenv("STACK_SERVICE_ENV"))
	for _, f := range strings.Fields(cmp.Or(os.Getenv("STACK_SHAPES"), "1x1 2x2")) {
		var s shape
		if _, err := fmt.Sscanf(f, "%dx%d", &s.gateways, &s.instances); err != nil || s.gateways < 1 || s.instances < 1 {
			tb.Fatalf("STACK_SHAPES: %q is not GATEWAYSxINSTANCES", f)
		}
		cfg.shapes = append(cfg.shapes, s)
	}
	return cfg
}

func TestClusterJourney(t *testing.T) {
	cfg := loadConfig(t)
	var results []result
	for _, sh := range cfg.shapes {
		var r result
		ok := t.Run(strings.ReplaceAll(sh.String(), " ", ""), func(t *testing.T) {
			r = runShape(t, cfg, sh)
		})
		if !ok {
			return
		}
		results = append(results, r)
	}
	if cfg.bench {
		printTable(os.Stdout, cfg, results)
	}
}

// result is what one shape's run measured.
type result struct {
	shape               shape
	journeys            int
	elapsed             time.Duration
	paid, soldOut       int
	latencies           [numSteps][]time.Duration
	viewPolls, viewRuns int
}

func (r result) rate() float64 { return float64(r.journeys) / r.elapsed.Seconds() }

func progress(tb testing.TB, format string, args ...any) {
	tb.Helper()
	tb.Logf("%s "+format, append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func runShape(t *testing.T, cfg config, sh shape) result {
	progress(t, "starting %v (PostgreSQL, broker)", sh)
	c := harness.StartCluster(t, harness.ClusterOptions{Gateways: sh.gateways, Instances: sh.instances, ServiceEnv: cfg.env})
	cl := &client{http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.users + 8},
	}, token: harness.Sign(t, harness.Claims(harness.AdminUserID, harness.ScopeAdmin))}
	gw := c.GatewayURLs()

	base := int64(1)<<60 + rand.Int64N(1<<40)<<16
	var ids atomic.Int64
	nextID := func() int64 { return base + ids.Add(1) }
	plenty := make([]int64, plentyProducts)
	for i := range plenty {
		plenty[i] = nextID()
		cl.createProduct(t, gw[0], plenty[i], plentyStock)
	}
	scarce := nextID()
	cl.createProduct(t, gw[0], scarce, cfg.scarce)

	cartEvents := harness.NewEventReader(t, c.EventTopic("shop.cart.v1"))
	orderEvents := harness.NewEventReader(t, c.EventTopic("shop.order.v1"))

	progress(t, "journeys from %d users for %v", cfg.users, cfg.duration)
	var (
		mu       sync.Mutex
		journeys []journey
		r        = result{shape: sh}
		failures []string
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for w := 0; w < cfg.users; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				j := journey{user: nextID(), product: plenty[rand.IntN(len(plenty))]}
				if rand.IntN(cfg.scarceEvery) == 0 {
					j.product = scarce
				}
				url := gw[(w+n)%len(gw)]
				err := cl.run(url, &j)
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					journeys = append(journeys, j)
					for s := range numSteps {
						if j.took[s] > 0 {
							r.latencies[s] = append(r.latencies[s], j.took[s])
						}
					}
					if j.viewPolls > 0 {
						r.viewPolls += j.viewPolls
						r.viewRuns++
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.journeys = len(journeys)
	if len(failures) > 0 {
		t.Fatalf("%d journeys failed; first: %s", len(failures), failures[0])
	}
	if r.journeys == 0 {
		t.Fatal("no journey completed")
	}
	paidBy := map[int64]int{} // product -> units paid
	for _, j := range journeys {
		if j.paid {
			r.paid++
			paidBy[j.product]++
		} else {
			r.soldOut++
		}
	}
	progress(t, "%d journeys in %v (%.1f/s): %d paid, %d refused for want of stock",
		r.journeys, r.elapsed.Round(time.Millisecond), r.rate(), r.paid, r.soldOut)

	// No oversell: every product's stock fell by exactly the units paid.
	for _, p := range append(slices.Clone(plenty), scarce) {
		initial := plentyStock
		if p == scarce {
			initial = cfg.scarce
		}
		var item struct {
			Quantity int `json:"quantity"`
		}
		cl.get(t, gw[0]+"/stock/"+str(p), &item)
		if got, want := item.Quantity, initial-paidBy[p]; got != want || got < 0 {
			t.Errorf("stock of product %d: got %d, want %d (%d on hand, %d paid)", p, got, want, initial, paidBy[p])
		}
	}
	if paidBy[scarce] > cfg.scarce {
		t.Errorf("scarce product: %d units paid, only %d on hand", paidBy[scarce], cfg.scarce)
	}

	// Every committed mutation has exactly one event once deduplicated by
	// ce_id: one CartItemAdded per added line, one OrderPaid per payment.
	progress(t, "checking events")
	wantItems := map[int64]bool{}
	wantOrders := map[int64]bool{}
	for _, j := range journeys {
		if j.item != 0 {
			wantItems[j.item] = true
		}
		if j.paid {
			wantOrders[j.order] = true
		}
	}
	checkEvents(t, cartEvents, "shop.events.v1.CartItemAdded", wantItems, idIn("item", "item_id"))
	checkEvents(t, orderEvents, "shop.events.v1.OrderPaid", wantOrders, idIn("order", "order_id"))

	// Carts converge: B's read model equals A's master copy, asked of every
	// instance of each, for every user: empty once paid, the line when the
	// payment was refused.
	progress(t, "checking that carts converge")
	for _, j := range journeys {
		want := []int64{}
		if !j.paid && j.item != 0 {
			want = []int64{j.item}
		}
		// Straight to the services, as the gateway itself with shop:admin
		// (they trust no caller without a signed identity assertion).
		type source struct{ url, service string }
		var sources []source
		for _, b := range c.ServiceBURLs() {
			sources = append(sources, source{b + "/cart/" + str(j.user), "service_b"})
		}
		for _, a := range c.ServiceAURLs() {
			sources = append(sources, source{a + "/cart/fallback/" + str(j.user), "service_a"})
		}
		for _, src := range sources {
			var got []int64
			name, value := c.ServiceHeader(src.service, 0, harness.ScopeAdmin)
			ok := eventually(syncTimeout, func() bool {
				got = cl.cartItems(t, src.url, name, value)
				return slices.Equal(got, want)
			})
			if !ok {
				t.Errorf("cart of user %d at %s: got items %v, want %v", j.user, src.url, got, want)
			}
		}
	}
	return r
}

// journey is one user's way through the shop and what it measured.
type journey struct {
	user, product int64
	item          int64 // 0: the add was refused, the product sold out
	order         int64
	paid          bool
	took          [numSteps]time.Duration
	viewPolls     int
}

// client makes the journeys; token is an administrator's, which may act for
// every user of the run.
type client struct {
	http  *http.Client
	token string
}

// run makes the journey through the gateway at base; an unexpected answer is an error.
func (c *client) run(base string, j *journey) error {
	t0 := time.Now()
	if status, body, err := c.do("GET", base+"/stock/"+str(j.product), ""); err != nil || status != http.StatusOK {
		return fmt.Errorf("browse: %d %s %v", status, body, err)
	}
	t1 := time.Now()
	status, body, err := c.mutate(base+"/cart/add", fmt.Sprintf("add-%d", j.user),
		fmt.Sprintf(`{"user_id":"%d","product_id":"%d","quantity":1}`, j.user, j.product))
	if err == nil && soldOut(status, body) {
		j.took[stepBrowse], j.took[stepAdd] = t1.Sub(t0), time.Since(t1)
		return nil // the journey ends here, with nothing in the cart
	}
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("add: %d %s %v", status, body, err)
	}
	var added struct {
		ItemID int64 `json:"item_id,string"`
	}
	if err := json.Unmarshal(body, &added); err != nil || added.ItemID == 0 {
		return fmt.Errorf("add: answer %s: %v", body, err)
	}
	j.item = added.ItemID
	t2 := time.Now()
	// Polls back off from 20 ms to 320 ms, so that many waiting users do
	// not flood B with the very reads that slow its consumer down.
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 320*time.Millisecond) {
		j.viewPolls++
		status, header, body, err := c.doHeader("GET", base+"/cart/"+str(j.user), "")
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("view cart: %d %s %v", status, body, err)
		}
		// A cart answered from A's master copy (B too slow or down) does
		// not say that B, which takes the payment, has the line.
		fromB := header.Get("X-Cart-Source") != "fallback"
		if fromB && bytes.Contains(body, []byte(`"`+str(j.item)+`"`)) {
			break
		}
		if time.Since(t2) > syncTimeout {
			return fmt.Errorf("view cart: item %d of user %d not on B after %v: %s", j.item, j.user, syncTimeout, body)
		}
		time.Sleep(pause)
	}
	t3 := time.Now()
	status, body, err = c.mutate(base+"/order/pay", fmt.Sprintf("pay-%d", j.user), fmt.Sprintf(`{"user_id":"%d"}`, j.user))
	switch {
	case err != nil:
		return fmt.Errorf("pay: %v", err)
	case status == http.StatusOK:
		var order struct {
			OrderID int64  `json:"order_id,string"`
			Status  string `json:"status"`
		}
		if err := json.Unmarshal(body, &order); err != nil || order.Status != "ORDER_STATUS_PAID" {
			return fmt.Errorf("pay: answer %s: %v", body, err)
		}
		j.paid, j.order = true, order.OrderID
	case status == http.StatusConflict && bytes.Contains(body, []byte("was applied")):
		// A retry of a payment that committed while its answer was lost
		// (a timeout): the order says what happened.
		var orders struct {
			Orders []struct {
				OrderID int64  `json:"order_id,string"`
				Status  string `json:"status"`
			} `json:"orders"`
		}
		status, body, err := c.do("GET", base+"/order?user_id="+str(j.user), "")
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &orders) != nil || len(orders.Orders) != 1 ||
			orders.Orders[0].Status != "ORDER_STATUS_PAID" {
			return fmt.Errorf("pay: applied without an answer, and the orders are %d %s %v", status, body, err)
		}
		j.paid, j.order = true, orders.Orders[0].OrderID
	case soldOut(status, body):
		// Sold out: the payment lost the race for the last units.
	default:
		return fmt.Errorf("pay: %d %s", status, body)
	}
	t4 := time.Now()
	j.took = [numSteps]time.Duration{t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)}
	return nil
}

// soldOut tells a refusal for want of stock (FAILED_PRECONDITION), which
// the scarce product's buyers may get when adding or paying.
func soldOut(status int, body []byte) bool {
	return status == http.StatusBadRequest && bytes.Contains(body, []byte("not enough stock"))
}

func (c *client) do(method, url, body string) (int, []byte, error) {
	status, _, b, err := c.doHeader(method, url, body)
	return status, b, err
}

// mutate POSTs body with an Idempotency-Key, as a careful client does, and
// sends it again while the answer is 503 or 504 (a service too slow on the
// loaded machine: "nothing was charged, try again"), up to 8 times.
func (c *client) mutate(url, key, body string) (int, []byte, error) {
	var (
		status int
		b      []byte
		err    error
	)
	for attempt, pause := 0, 200*time.Millisecond; attempt < 8; attempt, pause = attempt+1, min(2*pause, 3*time.Second) {
		status, _, b, err = c.doHeader("POST", url, body, "Idempotency-Key", key)
		if err != nil || (status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout) {
			break
		}
		time.Sleep(pause)
	}
	return status, b, err
}

func (c *client) doHeader(method, url, body string, header ...string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c.token != "" {
		req.Header.Set("Authorization", harness.Bearer(c.token))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

func (c *client) get(tb testing.TB, url string, into any, header ...string) {
	tb.Helper()
	status, _, body, err := c.doHeader("GET", url, "", header...)
	if err != nil || status != http.StatusOK {
		tb.Fatalf("GET %s: %d %s %v", url, status, body, err)
	}
	if err := json.Unmarshal(body, into); err != nil {
		tb.Fatalf("GET %s: %s: %v", url, body, err)
	}
}

func (c *client) createProduct(tb testing.TB, gateway string, id int64, quantity int) {
	tb.Helper()
	body := fmt.Sprintf(`{"product_id":"%d","product_name":"product %d","quantity":%d,"price_cents":"100"}`, id, id, quantity)
	if status, b, err := c.do("POST", gateway+"/stock", body); err != nil || status != http.StatusOK {
		tb.Fatalf("create product %d: %d %s %v", id, status, b, err)
	}
}

// cartItems are the item ids of a cart answered by a service (ids as JSON
// numbers; a gateway's strings would do too), sorted.
func (c *client) cartItems(tb testing.TB, url string, header ...string) []int64 {
	tb.Helper()
	var cart struct {
		Items []struct {
			ItemID json.Number `json:"item_id"`
		} `json:"items"`
	}
	c.get(tb, url, &cart, header...)
	ids := []int64{}
	for _, it := range cart.Items {
		id, err := strconv.ParseInt(it.ItemID.String(), 10, 64)
		if err != nil {
			tb.Fatalf("%s: item id %q: %v", url, it.ItemID, err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// checkEvents waits for one event of type typ per id in want (deduplicated
// by ce_id) and fails on a missing one, an unknown one, or two distinct
// events for one id.
func checkEvents(t *testing.T, r *harness.EventReader, typ string, want map[int64]bool, idOf func([]byte) (int64, error)) {
	t.Helper()
	count := func(evs []harness.Event) (map[int64]int, []string) {
		byID := map[int64]int{}
		seen := map[string]bool{}
		var problems []string
		for _, e := range evs {
			if e.Type() != typ || seen[e.Headers["ce_id"]] {
				continue
			}
			seen[e.Headers["ce_id"]] = true
			id, err := idOf(e.Value)
			if err != nil {
				problems = append(problems, fmt.Sprintf("unreadable %s: %v", e, err))
				continue
			}
			byID[id]++
		}
		return byID, problems
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	evs, _ := r.Collect(ctx, func(evs []harness.Event) bool {
		byID, _ := count(evs)
		for id := range want {
			if byID[id] == 0 {
				return false
			}
		}
		return true
	})
	byID, problems := count(evs)
	for id := range want {
		if byID[id] == 0 {
			problems = append(problems, fmt.Sprintf("no %s for %d", typ, id))
		}
	}
	for id, n := range byID {
		switch {
		case !want[id]:
			problems = append(problems, fmt.Sprintf("%s for %d, which no journey committed", typ, id))
		case n > 1:
			problems = append(problems, fmt.Sprintf("%d distinct %s events for %d", n, typ, id))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%d problems with %s events (%d wanted), first ones: %s", len(problems), typ, len(want),
			strings.Join(problems[:min(5, len(problems))], "; "))
	}
}

// idIn reads an event payload's id at object.field (an int64, which
// protojson writes as a JSON string).
func idIn(object, field string) func([]byte) (int64, error) {
	return func(v []byte) (int64, error) {
		var payload map[string]map[string]json.RawMessage
		if err := json.Unmarshal(v, &payload); err != nil {
			return 0, err
		}
		var id string
		if err := json.Unmarshal(payload[object][field], &id); err != nil {
			return 0, fmt.Errorf("%s.%s: %w", object, field, err)
		}
		return strconv.ParseInt(id, 10, 64)
	}
}

func eventually(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func str(id int64) string { return strconv.FormatInt(id, 10) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func printTable(w io.Writer, cfg config, rs []result) {
	fmt.Fprintf(w, "\nbench-stack: %d users, %v per shape, services on PostgreSQL, events on\n\n", cfg.users, cfg.duration)
	fmt.Fprintf(w, "| shape | journeys/s | x first | paid | sold out |")
	for _, n := range stepNames {
		fmt.Fprintf(w, " %s p50 / p99 |", n)
	}
	fmt.Fprintf(w, " view polls |\n|---|---:|---:|---:|---:|")
	for range stepNames {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintf(w, "---:|\n")
	for _, r := range rs {
		fmt.Fprintf(w, "| %v | %.1f | %.2fx | %d | %d |", r.shape, r.rate(), r.rate()/rs[0].rate(), r.paid, r.soldOut)
		for s := range numSteps {
			fmt.Fprintf(w, " %v / %v |", percentile(r.latencies[s], 0.5).Round(100*time.Microsecond),
				percentile(r.latencies[s], 0.99).Round(100*time.Microsecond))
		}
		fmt.Fprintf(w, " %.1f |\n", float64(r.viewPolls)/float64(max(1, r.viewRuns)))
	}
}
