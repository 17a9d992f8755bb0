//go:build livebench

// Package livebench measures the live updates (the Watch streams) on the
// real stack (gateway binary, both services, the broker), for
// docs/benchmarks.md. It is built only with the livebench tag, so no test
// run compiles it, and runs only through `make bench-live`
// (scripts/bench-live.sh: -tags livebench, after the load guard), and prints:
//
//   - latency from a mutation's answer (REST POST /cart/add, the user named
//     with an admin token) to its CartItemAdded on the owner's Server-Sent
//     Events stream, p50/p99, with 1 subscriber and with LIVE_BENCH_SUBSCRIBERS
//     (1,000): the one watching the mutating user over SSE, the others idle
//     gRPC WatchCart streams of other users;
//   - memory per idle stream at LIVE_BENCH_IDLE (10,000) open gRPC streams of
//     distinct users, multiplexed over connections of LIVE_BENCH_PER_CONN
//     (2,500) streams: the gateway's RSS and Go heap in use, from its admin
//     /metrics, after minus before, divided by the streams;
//   - requests/s of a public REST read (GET /stock/{id}, LIVE_BENCH_CLIENTS
//     clients for LIVE_BENCH_DURATION) with LIVE_BENCH_SUBSCRIBERS idle
//     streams open against none, in LIVE_BENCH_ROUNDS interleaved rounds,
//     and the ratio of the medians.
//
// The gateway runs with its stream caps raised for the run (-live-max-streams,
// -live-max-streams-per-user, -grpc-max-streams); every stream uses one
// admin token, so that the caps, not token signing, bound the run.
package livebench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// params are the run's sizes, from the environment.
type params struct {
	subscribers, idle, perConn, mutations, clients, rounds int
	duration                                               time.Duration
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func paramsFromEnv(tb testing.TB) params {
	p := params{
		subscribers: envInt(tb, "LIVE_BENCH_SUBSCRIBERS", 1000),
		idle:        envInt(tb, "LIVE_BENCH_IDLE", 10000),
		perConn:     envInt(tb, "LIVE_BENCH_PER_CONN", 2500),
		mutations:   envInt(tb, "LIVE_BENCH_MUTATIONS", 300),
		clients:     envInt(tb, "LIVE_BENCH_CLIENTS", 32),
		rounds:      envInt(tb, "LIVE_BENCH_ROUNDS", 3),
		duration:    5 * time.Second,
	}
	if v := os.Getenv("LIVE_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			tb.Fatalf("LIVE_BENCH_DURATION=%q: want a positive duration", v)
		}
		p.duration = d
	}
	return p
}

func TestLiveBench(t *testing.T) {
	if os.Getenv("BENCH_LOAD_CHECKED") != "1" {
		t.Fatal("run through make bench-live (scripts/bench-live.sh), which refuses to measure on a busy machine")
	}
	p := paramsFromEnv(t)
	most := max(p.subscribers, p.idle) + 16
	s := harness.Start(t, harness.Options{GatewayArgs: []string{
		"-live-max-streams", strconv.Itoa(most),
		"-live-max-streams-per-user", strconv.Itoa(most),
		"-grpc-max-streams", strconv.Itoa(p.perConn + 16),
	}})
	admin := s.AdminToken(t)
	product := int64(time.Now().UnixNano() % 1e12)
	if code, _, body := s.Do(t, "POST", "/stock", fmt.Sprintf(`{"product_id":%d,"product_name":"bench","quantity":1000000,"price_cents":100}`, product)); code != http.StatusOK {
		t.Fatalf("POST /stock: %d %v", code, body)
	}
	fmt.Printf("streams: gateway heartbeat (position) every 15 s; caps raised to %d streams\n", most)

	// (a) Latency: 1 subscriber, then 1 among p.subscribers.
	watched := product + 1
	w := watch(t, s, admin, watched)
	defer w.cancel()
	lat1 := latency(t, s, w, watched, product, p.mutations)
	others := openIdle(t, s, admin, watched+1, p.subscribers-1, p.perConn)
	latN := latency(t, s, w, watched, product, p.mutations)
	others.close(t, s)
	fmt.Printf("latency, POST /cart/add answered -> CartItemAdded on the owner's SSE stream (%d mutations, one at a time):\n", p.mutations)
	fmt.Printf("  %-44s p50 %8.2f ms  p99 %8.2f ms\n", "1 subscriber", ms(pct(lat1, 50)), ms(pct(lat1, 99)))
	fmt.Printf("  %-44s p50 %8.2f ms  p99 %8.2f ms\n", fmt.Sprintf("%d subscribers (%d idle gRPC, other users)", p.subscribers, p.subscribers-1),
		ms(pct(latN, 50)), ms(pct(latN, 99)))
	w.cancel()
	waitStreams(t, s, 0)

	// (c) The request path with streams open against none, interleaved.
	var none, with, cpuNone, cpuWith []float64
	for r := range p.rounds {
		rate, cpu := readRate(t, s, product, p.clients, p.duration)
		none, cpuNone = append(none, rate), append(cpuNone, cpu)
		idle := openIdle(t, s, admin, watched+int64(1+r)*1e6, p.subscribers, p.perConn)
		rate, cpu = readRate(t, s, product, p.clients, p.duration)
		with, cpuWith = append(with, rate), append(cpuWith, cpu)
		idle.close(t, s)
	}
	mNone, mWith := median(none), median(with)
	fmt.Printf("GET /stock/{id}, %d clients, %v per measurement, %d rounds (median):\n", p.clients, p.duration, p.rounds)
	fmt.Printf("  %-44s %10.0f req/s  %v  gateway CPU %.0f µs/req %v\n", "no stream open", mNone, rounded(none), median(cpuNone), rounded(cpuNone))
	fmt.Printf("  %-44s %10.0f req/s  %v  gateway CPU %.0f µs/req %v\n", fmt.Sprintf("%d idle streams open", p.subscribers), mWith, rounded(with), median(cpuWith), rounded(cpuWith))
	fmt.Printf("  ratio %.3fx (target >= 0.95x); the gateway's own CPU per request %.3fx\n", mWith/mNone, median(cpuWith)/median(cpuNone))

	// (b) Memory per idle stream.
	before := gatewayMemory(t, s)
	idle := openIdle(t, s, admin, watched+1e8, p.idle, p.perConn)
	time.Sleep(3 * time.Second)
	after := gatewayMemory(t, s)
	idle.close(t, s)
	n := float64(p.idle)
	fmt.Printf("memory at %d idle gRPC streams over %d connections (gateway's admin /metrics, after - before, per stream):\n", p.idle, idle.conns)
	fmt.Printf("  RSS %.1f -> %.1f MiB: %.1f KiB per stream\n", mib(before.rss), mib(after.rss), (after.rss-before.rss)/n/1024)
	fmt.Printf("  Go heap in use %.1f -> %.1f MiB: %.1f KiB per stream\n", mib(before.heap), mib(after.heap), (after.heap-before.heap)/n/1024)
	fmt.Printf("  goroutines %.0f -> %.0f: %.1f per stream\n", before.goroutines, after.goroutines, (after.goroutines-before.goroutines)/n)
}

// sseWatch is an SSE stream whose events' arrival times come on arrivals.
type sseWatch struct {
	arrivals chan time.Time
	cancel   context.CancelFunc
}

// watch opens the SSE cart stream of user (the admin token names it) and
// notes the arrival time of each event.
func watch(tb testing.TB, s *harness.Stack, admin string, user int64) *sseWatch {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/cart/events?user_id=%d", s.RESTURL(), user), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", harness.Bearer(admin))
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if resp, err = http.DefaultClient.Do(req); err != nil {
			tb.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
			break
		}
		resp.Body.Close()
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /cart/events: %d", resp.StatusCode)
	}
	w := &sseWatch{arrivals: make(chan time.Time, 16), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "event: ") {
				w.arrivals <- time.Now()
			}
		}
	}()
	return w
}

// latency makes n mutations of user's cart one at a time and returns, for
// each, the time from its answer to its event's arrival on w.
func latency(tb testing.TB, s *harness.Stack, w *sseWatch, user, product int64, n int) []time.Duration {
	tb.Helper()
	body := fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, product)
	out := make([]time.Duration, 0, n)
	for range n {
		code, _, raw := s.DoRaw(tb, "POST", "/cart/add", body)
		answered := time.Now()
		if code != http.StatusOK {
			tb.Fatalf("POST /cart/add: %d %s", code, raw)
		}
		select {
		case at := <-w.arrivals:
			out = append(out, max(0, at.Sub(answered)))
		case <-time.After(20 * time.Second):
			tb.Fatal("the mutation's event did not arrive within 20s")
		}
	}
	return out
}

// idleStreams are open gRPC WatchCart streams that nobody mutates.
type idleStreams struct {
	before int // the streams open before these
	cancel context.CancelFunc
	conns  int
	closed []*grpc.ClientConn
}

// openIdle opens n WatchCart streams of users first, first+1, ... over
// connections of perConn streams, and returns once each has its first
// message (its position: it is subscribed).
func openIdle(tb testing.TB, s *harness.Stack, admin string, first int64, n, perConn int) *idleStreams {
	tb.Helper()
	before := liveStreams(tb, s)
	ctx, cancel := context.WithCancel(harness.WithToken(context.Background(), admin))
	is := &idleStreams{before: before, cancel: cancel}
	var clients []cartv1.CartServiceClient
	for i := 0; i < n; i += perConn {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		is.closed = append(is.closed, conn)
		clients = append(clients, cartv1.NewCartServiceClient(conn))
	}
	is.conns = len(clients)
	var failed atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			st, err := clients[i/perConn].WatchCart(ctx, &cartv1.WatchCartRequest{UserId: first + int64(i)})
			if err == nil {
				_, err = st.Recv()
			}
			<-sem
			if err != nil {
				failed.Store(err)
				return
			}
			for { // drain the heartbeats until closed
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
	}
	for range cap(sem) { // every opener has its first message
		sem <- struct{}{}
	}
	if err, _ := failed.Load().(error); err != nil {
		cancel()
		tb.Fatalf("opening %d streams: %v", n, err)
	}
	waitStreams(tb, s, before+n)
	return is
}

func (is *idleStreams) close(tb testing.TB, s *harness.Stack) {
	tb.Helper()
	is.cancel()
	for _, c := range is.closed {
		c.Close()
	}
	waitStreams(tb, s, is.before)
}

// metrics reads unlabelled metrics from the gateway's admin /metrics.
func metrics(tb testing.TB, s *harness.Stack, names ...string) map[string]float64 {
	tb.Helper()
	resp, err := http.Get(s.AdminURL() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if ok && slices.Contains(names, name) {
			if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
				out[name] = v
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			tb.Fatalf("the gateway's /metrics has no %s", n)
		}
	}
	return out
}

func liveStreams(tb testing.TB, s *harness.Stack) int {
	tb.Helper()
	return int(metrics(tb, s, "shop_gateway_live_streams")["shop_gateway_live_streams"])
}

// waitStreams waits until the gateway counts n open streams.
func waitStreams(tb testing.TB, s *harness.Stack, n int) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for got := liveStreams(tb, s); got != n; got = liveStreams(tb, s) {
		if time.Now().After(deadline) {
			tb.Fatalf("the gateway has %d streams open, want %d", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type memory struct{ rss, heap, goroutines float64 }

func gatewayMemory(tb testing.TB, s *harness.Stack) memory {
	tb.Helper()
	m := metrics(tb, s, "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_goroutines")
	return memory{rss: m["process_resident_memory_bytes"], heap: m["go_memstats_heap_inuse_bytes"], goroutines: m["go_goroutines"]}
}

// readRate is the requests/s of GET /stock/{product} from c clients for d,
// and the gateway process's own CPU per request in µs (its
// process_cpu_seconds_total on the admin /metrics, after − before): the
// read is bounded by service A, whose noise the CPU figure does not carry.
func readRate(tb testing.TB, s *harness.Stack, product int64, c int, d time.Duration) (rps, cpuMicros float64) {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c}}
	defer client.CloseIdleConnections()
	u := fmt.Sprintf("%s/stock/%d", s.RESTURL(), product)
	cpu0, ok := metrics(tb, s, "process_cpu_seconds_total")["process_cpu_seconds_total"]
	if !ok {
		tb.Fatal("the gateway's admin /metrics has no process_cpu_seconds_total")
	}
	var done, bad atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		tb.Fatalf("GET /stock/%d: %d answers not 200", product, bad.Load())
	}
	rps = float64(done.Load()) / time.Since(start).Seconds()
	cpu := metrics(tb, s, "process_cpu_seconds_total")["process_cpu_seconds_total"] - cpu0
	return rps, cpu * 1e6 / float64(max(done.Load(), 1))
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func rounded(xs []float64) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x + 0.5)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b float64) float64      { return b / (1 << 20) }
