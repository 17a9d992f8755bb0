package events_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/tests/harness"
)

// runID is a prefix unique to this test process: request ids and product
// ids built from it keep this run's events apart from everything else on
// the shared topics.
var runID = newRunID()

func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// productBase returns a product id range start no other run uses: product
// ids are int64, so a random 9-digit block times 1000 leaves room below.
func productBase() int64 {
	n, _ := strconv.ParseUint(runID, 16, 32)
	return int64(n%1_000_000_000)*1000 + 1_000_000
}

// httpClient keeps enough idle connections for the load's clients, so that
// 10,000 requests do not each open a connection.
var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second},
}

// createProducts creates n products starting at base through the gateway
// and returns their ids.
func createProducts(tb testing.TB, s *harness.Stack, base int64, n int) []int64 {
	tb.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = base + int64(i)
		body := fmt.Sprintf(`{"product_id":%d,"product_name":"load %d","quantity":1,"price_cents":100}`, ids[i], i)
		if st, _, b := s.Do(tb, "POST", "/stock", body); st != http.StatusOK {
			tb.Fatalf("POST /stock %s: %d %v", body, st, b)
		}
	}
	return ids
}

// load sends SetStockLevel mutations from many clients, every other one
// over gRPC, and remembers which got a success. Each request has its own
// X-Request-Id ("<prefix>-<n>"), which its event carries.
type load struct {
	s        *harness.Stack
	prefix   string
	products []int64
	grpc     stockv1.StockServiceClient
	token    string // the stack's admin token, for the REST calls

	started, finished atomic.Int64

	mu       sync.Mutex
	ok       map[string]string // request id -> expected event key
	outcomes map[string]int    // "200", "503", "UNAVAILABLE", "transport error", ...
}

func newLoad(tb testing.TB, s *harness.Stack, prefix string, products []int64) *load {
	tb.Helper()
	return &load{
		s:        s,
		prefix:   prefix,
		products: products,
		grpc:     stockv1.NewStockServiceClient(s.GRPCConn(tb)),
		token:    s.AdminToken(tb),
		ok:       map[string]string{},
		outcomes: map[string]int{},
	}
}

// run sends n mutations from clients goroutines and returns when all have
// an answer (or a transport error).
func (l *load) run(n, clients int) {
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := l.started.Add(1)
				if i > int64(n) {
					return
				}
				l.one(int(i))
				l.finished.Add(1)
			}
		})
	}
	wg.Wait()
}

// mutationDeadline bounds each mutation of the load, over both protocols.
const mutationDeadline = 20 * time.Second

// one sends mutation i: quantity i on product i mod len(products).
func (l *load) one(i int) {
	id := fmt.Sprintf("%s-%d", l.prefix, i)
	product := l.products[i%len(l.products)]
	quantity := int32(i % 100_000)
	// One deadline for both protocols: a gRPC call carries it, and a REST
	// call states it in Grpc-Timeout (the gateway's default upstream bound
	// is shorter, and a loaded 2-core runner can exceed it without Kafka
	// having anything to do with it).
	ctx, cancel := context.WithTimeout(context.Background(), mutationDeadline)
	defer cancel()
	var outcome string
	if i%2 == 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
		_, err := l.grpc.SetStockLevel(ctx, &stockv1.SetStockLevelRequest{ProductId: product, Quantity: quantity})
		outcome = "grpc " + status.Code(err).String()
	} else {
		body := fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, product, quantity)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.s.RESTURL()+"/stock/update", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", id)
		req.Header.Set("Grpc-Timeout", strconv.Itoa(int(mutationDeadline/time.Second))+"S")
		req.Header.Set("Authorization", harness.Bearer(l.token))
		resp, err := httpClient.Do(req)
		if err != nil {
			outcome = "rest transport error"
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			outcome = "rest " + strconv.Itoa(resp.StatusCode)
		}
	}
	success := outcome == "grpc OK" || outcome == "rest 200"
	l.mu.Lock()
	l.outcomes[outcome]++
	if success {
		l.ok[id] = strconv.FormatInt(product, 10)
	}
	l.mu.Unlock()
	if !success {
		// A client that retried at once would spin while the gateway is
		// down; real clients back off.
		time.Sleep(50 * time.Millisecond)
	}
}

// waitProgress blocks until at least frac of n mutations have finished or
// done is closed.
func (l *load) waitProgress(frac float64, n int, done <-chan struct{}) {
	for float64(l.finished.Load()) < frac*float64(n) {
		select {
		case <-done:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (l *load) succeeded() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.ok))
	for k, v := range l.ok {
		out[k] = v
	}
	return out
}

func (l *load) outcomeSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.outcomes))
	for k := range l.outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, l.outcomes[k])
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// delivery counts what reached Kafka for a load.
type delivery struct {
	succeeded  int // mutations answered with success
	events     int // events of the load read from Kafka, duplicates included
	unique     int // distinct ce_ids among them
	duplicates int // events - unique
	lost       int // successes without an event
	extra      int // distinct events of requests that got no success answer
	wrongKey   int // events whose key is not their product
	// waited is how long awaitDelivery waited; settled that it stopped
	// because the rest could not arrive (outbox empty, nothing new read).
	waited  time.Duration
	settled bool
}

func (d delivery) String() string {
	s := fmt.Sprintf("succeeded=%d events=%d unique=%d duplicates=%d lost=%d extra(no success seen)=%d wrong_key=%d",
		d.succeeded, d.events, d.unique, d.duplicates, d.lost, d.extra, d.wrongKey)
	if d.settled {
		s += fmt.Sprintf(" (stopped waiting after %v: outbox empty, nothing new read for %v)", d.waited.Round(100*time.Millisecond), settleAfterDrain)
	}
	return s
}

// settleAfterDrain is how long awaitDelivery goes on waiting once the
// gateway's outbox is empty and the reader reads nothing new. With the
// outbox empty every event has been acknowledged by Kafka, so one still
// missing then will not come; the wait is only for a reader catching up.
const settleAfterDrain = 10 * time.Second

// awaitDelivery waits until every success in ok has its event among those
// r reads with an x-request-id starting with prefix, then counts. It stops
// early, when the events it waits for can no longer arrive: s's outbox
// empty and no new event read for settleAfterDrain. timeout bounds the
// whole wait (a long drain after an outage). It does not fail the test:
// the caller checks the counts.
func awaitDelivery(s *harness.Stack, r *harness.EventReader, prefix string, ok map[string]string, timeout time.Duration) (delivery, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	var read atomic.Int64
	var settled atomic.Bool
	go func() {
		if drainedAndIdle(ctx, s, &read) {
			settled.Store(true)
			cancel()
		}
	}()
	match := func(e harness.Event) bool { return strings.HasPrefix(e.Headers["x-request-id"], prefix+"-") }
	evs, _ := r.Collect(ctx, func(evs []harness.Event) bool {
		read.Store(int64(len(evs)))
		seen := map[string]bool{}
		for _, e := range evs {
			if match(e) {
				seen[e.Headers["x-request-id"]] = true
			}
		}
		for id := range ok {
			if !seen[id] {
				return false
			}
		}
		return true
	})
	evs = harness.Filter(evs, match)
	d := delivery{succeeded: len(ok), events: len(evs), waited: time.Since(start), settled: settled.Load()}
	byID := map[string]bool{}
	seenReq := map[string]bool{}
	for _, e := range evs {
		req := e.Headers["x-request-id"]
		if byID[e.Headers["ce_id"]] {
			continue
		}
		byID[e.Headers["ce_id"]] = true
		seenReq[req] = true
		key, isOK := ok[req]
		if !isOK {
			d.extra++
			continue
		}
		if e.Key != key {
			d.wrongKey++
		}
	}
	d.unique = len(byID)
	d.duplicates = d.events - d.unique
	var missing []string
	for id := range ok {
		if !seenReq[id] {
			d.lost++
			if len(missing) < 10 {
				missing = append(missing, id)
			}
		}
	}
	return d, missing
}

// drainedAndIdle returns true once s's outbox has been empty, and read
// (the count of events read) unchanged, for settleAfterDrain; false when
// ctx ends first. A gateway that does not answer (restarting) is not empty.
func drainedAndIdle(ctx context.Context, s *harness.Stack, read *atomic.Int64) bool {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var since time.Time
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		n := read.Load()
		_, body, err := getReadyz(ctx, s)
		outbox, _ := body["outbox"].(map[string]any)
		detail, _ := outbox["detail"].(map[string]any)
		depth, known := detail["depth"].(float64)
		switch {
		case err != nil || !known || depth > 0 || n != last:
			since, last = time.Time{}, n
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= settleAfterDrain:
			return true
		}
	}
}

// readyz returns the status and body of /readyz on the gateway's admin
// listener (the body with every check's details).
func readyz(tb testing.TB, s *harness.Stack) (int, map[string]any) {
	tb.Helper()
	code, body, err := getReadyz(context.Background(), s)
	if err != nil {
		tb.Fatal(err)
	}
	return code, body
}

// getReadyz gets the status and body of /readyz on the gateway's admin
// listener.
func getReadyz(ctx context.Context, s *harness.Stack) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.AdminURL()+"/readyz", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET /readyz: %w", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body, nil
}

// grpcCtx returns a context with a 10s deadline carrying the metadata
// pairs md.
func grpcCtx(tb testing.TB, md ...string) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, md...)
}
