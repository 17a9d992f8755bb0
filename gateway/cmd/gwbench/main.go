// Command gwbench measures the gateway's request path against a plain
// httputil.ReverseProxy (the seed's design, with a tuned transport) in one
// run, on loopback, against a fast local upstream. It prints req/s, p50 and
// p99 per target and the ratio to the reverse proxy. Rounds are interleaved
// so that noise from the shared machine hits every target alike; the figure
// per target is the median over rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"

	"github.com/shopgateway/shop/gateway/devkeys"
	"github.com/shopgateway/shop/gateway/internal/app"
)

const itemJSON = `{"product_id":1,"product_name":"green tea","quantity":42,"price_cents":350}`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gwbench:", err)
		os.Exit(1)
	}
}

type target struct {
	name string
	// base names the target this one's ratio is against; "" for a baseline.
	base string
	// do sends one request; it is called concurrently.
	do func(ctx context.Context) error
	// proc, when set, is the process that serves the target, whose own CPU
	// per request is reported as the hop's.
	proc *child
	// settle, when set, runs after each of the target's measurements,
	// untimed: it lets work the target left behind (a relay's backlog)
	// finish before the next target is measured.
	settle func()
}

type result struct {
	n        int // requests answered
	rps      float64
	p50, p99 time.Duration
	errors   int64
	// cpu is the process's CPU time (user and system) per request: client,
	// upstream and gateway alike, but less sensitive than req/s to other
	// processes competing for the machine.
	cpu time.Duration
	// hop is the serving process's own CPU time per request (targets with
	// a proc only).
	hop time.Duration
}

func run() error {
	var (
		duration    = flag.Duration("duration", 3*time.Second, "length of one measurement")
		rounds      = flag.Int("rounds", 3, "interleaved rounds per target")
		concurrency = flag.Int("c", 64, "concurrent clients")
		variants    = flag.Bool("variants", true, "also measure the reference points and designs not chosen (Go's default proxy transport, no hop at all, an unbuffered access log)")
		cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (goroutines labelled part=client, proxy, upstream or gateway)")
		only        = flag.String("only", "", "measure only the targets whose name contains this (the baseline is always measured)")
		ratePerSec  = flag.Float64("rate", 0, "offered load in requests per second over all clients (they wait their turn before each request, and latency is timed from the send); 0 sends as fast as the clients can, to find the throughput")
		authMode    = flag.Bool("auth", false, "measure the REST path with authentication off and on (a cached token) instead; with -gateway-bin, run the gateways with authentication on and every client sending one cached admin token")
		eventsMode  = flag.Bool("events", false, "measure a mutation (POST /stock/update) with events off and on (fsynced outbox, relay to -kafka-brokers) instead")
		gatewayBin  = flag.String("gateway-bin", "", "measure this gateway binary (or several: label=path,label=path) and the proxy each in a process of its own instead, with their own CPU per request and RSS")
		soak        = flag.Duration("soak", 0, "with -gateway-bin: then keep the gateway under load this long and print its RSS over time")
		serveProx   = flag.String("serve-proxy", "", "internal: serve the tuned reverse proxy to -upstream on this address (the proxy process of -gateway-bin)")
		upstreamURL = flag.String("upstream", "", "internal: the upstream of -serve-proxy")

		brokers   = flag.String("kafka-brokers", envOr("KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka for -events (env KAFKA_BROKERS)")
		outboxDir = flag.String("outbox-parent", "", "directory in which -events makes its temporary outbox (default: the system temp dir); put it on the disk to measure")
	)
	flag.DurationVar(&commitDelay, "commit-delay", app.DefaultOutboxCommitDelay, "outbox group-commit delay of the events-on gateways (-events), as the gateway's -outbox-commit-delay")
	flag.Parse()
	if *ratePerSec < 0 {
		return fmt.Errorf("-rate %v: must not be negative", *ratePerSec)
	}
	offeredRate = *ratePerSec
	if *serveProx != "" {
		return serveProxy(*serveProx, *upstreamURL)
	}
	if commitDelay == 0 {
		commitDelay = -1 // EventsConfig's value for "commit at once"; its 0 is the default
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	logs, err := newGatewayLogs()
	if err != nil {
		return err
	}
	defer logs.close()
	logBuffered, err := logs.logger(true)
	if err != nil {
		return err
	}

	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, itemJSON)
	})}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go labelled("upstream", func() { _ = up.Serve(upLn) })
	defer up.Close()
	upURL := "http://" + upLn.Addr().String()

	// Baseline: the seed's reverse proxy, with a transport tuned like ours.
	u, _ := url.Parse(upURL)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.Transport = tunedTransport()
	rpAddr, stopRP, err := serveHTTP(rp)
	if err != nil {
		return err
	}
	defer stopRP()

	client := &http.Client{Transport: tunedTransport()}
	if *gatewayBin != "" {
		return runProcesses(ctx, *gatewayBin, upURL, client, *concurrency, *rounds, *duration, *soak, *authMode)
	}
	if *authMode {
		return runAuth(ctx, upURL, client, *concurrency, *rounds, *duration, logs)
	}
	if *eventsMode {
		return runEvents(ctx, upURL, app.SplitList(*brokers), *outboxDir, client, *concurrency, *rounds, *duration, logs)
	}
	getTarget := func(name, base, addr string) target {
		u := "http://" + addr + "/stock/1"
		return target{name: name, base: base, do: func(ctx context.Context) error { return get(ctx, client, u) }}
	}
	postTarget := func(name, base, addr string) target {
		u := "http://" + addr + "/stock/update"
		return target{name: name, base: base, do: func(ctx context.Context) error {
			return send(ctx, client, http.MethodPost, u, mutationJSON, "")
		}}
	}
	const getBase, postBase = "reverse proxy, GET (baseline)", "reverse proxy, POST (baseline)"

	targets := []target{getTarget(getBase, "", rpAddr)}
	if *variants {
		// The seed as it was: the same proxy on Go's default transport (two
		// idle connections per host), for reference.
		seed := httputil.NewSingleHostReverseProxy(u)
		seed.ErrorLog = log.New(io.Discard, "", 0)
		seedAddr, stopSeed, err := serveHTTP(seed)
		if err != nil {
			return err
		}
		defer stopSeed()
		targets = append(targets, getTarget("reverse proxy, default transport", getBase, seedAddr))
		// No hop at all: the load generator straight to the upstream. What a
		// perfectly free intermediary would reach on this machine, so the
		// ceiling of any ratio above.
		targets = append(targets, getTarget("direct to upstream (ceiling)", getBase, upLn.Addr().String()))
	}
	gwAddr, grpcAddr, stop, err := startGateway(ctx, app.Config{}, upURL, logBuffered)
	if err != nil {
		return err
	}
	defer stop()
	targets = append(targets, getTarget("gateway REST, GET (chosen)", getBase, gwAddr))
	if *variants {
		// The access log as it was: one write system call per line.
		logUnbuffered, err := logs.logger(false)
		if err != nil {
			return err
		}
		httpAddr, _, stop, err := startGateway(ctx, app.Config{}, upURL, logUnbuffered)
		if err != nil {
			return err
		}
		defer stop()
		targets = append(targets, getTarget("gateway REST, GET, log unbuffered", getBase, httpAddr))
	}
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	stock := stockv1.NewStockServiceClient(cc)
	targets = append(targets, target{name: "gateway gRPC, GetStock", base: getBase, do: func(ctx context.Context) error {
		_, err := stock.GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1})
		return err
	}})
	targets = append(targets,
		postTarget(postBase, "", rpAddr),
		postTarget("gateway REST, POST (chosen)", postBase, gwAddr))

	targets = selectTargets(targets, *only)
	all := measureAll(targets, *concurrency, *rounds, *duration)
	fmt.Printf("GetStock (GET /stock/1) and SetStockLevel (POST /stock/update), events off, %d clients, %d rounds of %s, GOMAXPROCS=%d, median per target; ratio against the target's baseline\n\n",
		*concurrency, *rounds, *duration, goMaxProcs())
	printTable(targets, all)
	printTotals(targets, all)
	return nil
}

// selectTargets keeps the baselines and the targets whose name contains
// only; all of them when only is empty.
func selectTargets(targets []target, only string) []target {
	if only == "" {
		return targets
	}
	var out []target
	for _, t := range targets {
		if t.base == "" || strings.Contains(t.name, only) {
			out = append(out, t)
		}
	}
	return out
}

// measureAll warms every target up, then measures them in interleaved
// rounds, so that noise from the shared machine hits every target alike.
func measureAll(targets []target, c, rounds int, d time.Duration) [][]result {
	run := func(t target, d time.Duration) result {
		res := measure(t, c, d)
		if t.settle != nil {
			t.settle()
		}
		return res
	}
	for _, t := range targets {
		run(t, 300*time.Millisecond)
	}
	all := make([][]result, len(targets))
	for r := 0; r < rounds; r++ {
		for i, t := range targets {
			all[i] = append(all[i], run(t, d))
		}
	}
	return all
}

// tunedTransport is net/http's transport tuned as a proxy's: many idle
// connections per host, no transparent compression.
func tunedTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
}

// printTable prints the median of each target's rounds and its ratio to
// its baseline.
func printTable(targets []target, all [][]result) {
	procs := false
	for _, t := range targets {
		procs = procs || t.proc != nil
	}
	fmt.Printf("| %-40s | %10s | %9s | %9s | %8s | %8s | %6s |", "target", "req/s", "p50", "p99", "ratio", "cpu/req", "errors")
	if procs {
		fmt.Printf(" %11s | %9s |", "hop cpu/req", "hop ratio")
	}
	fmt.Printf("\n|%s|%s|%s|%s|%s|%s|%s|", dashes(42), dashes(12), dashes(11), dashes(11), dashes(10), dashes(10), dashes(8))
	if procs {
		fmt.Printf("%s|%s|", dashes(13), dashes(11))
	}
	fmt.Println()
	rps, hop := map[string]float64{}, map[string]time.Duration{}
	for i, t := range targets {
		rps[t.name], hop[t.name] = median(all[i]).rps, medianHop(all[i])
	}
	for i, t := range targets {
		m := median(all[i])
		base, baseHop := rps[t.base], hop[t.base]
		if t.base == "" {
			base, baseHop = m.rps, hop[t.name]
		}
		fmt.Printf("| %-40s | %10.0f | %9s | %9s | %7.2fx | %8s | %6d |", t.name, m.rps, m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond), m.rps/base, m.cpu.Round(time.Microsecond), m.errors)
		if procs {
			h := hop[t.name]
			ratio := 0.0
			if h > 0 {
				ratio = float64(baseHop) / float64(h)
			}
			fmt.Printf(" %11s | %8.2fx |", h.Round(time.Microsecond), ratio)
		}
		fmt.Println()
	}
}

// printTotals prints how many requests each target answered over all its
// rounds (warm-up excluded): with a CPU profile of the run, a part's CPU
// divided by its target's total is its CPU per request
// (scripts/profsplit.py takes it).
func printTotals(targets []target, all [][]result) {
	fmt.Printf("\nrequests answered over the rounds:")
	for i, t := range targets {
		n := 0
		for _, r := range all[i] {
			n += r.n
		}
		fmt.Printf(" %q=%d", t.name, n)
	}
	fmt.Println()
}

// medianHop is the median over rounds of the serving process's CPU per
// request: steadier than taking the round of median req/s.
func medianHop(rs []result) time.Duration {
	h := make([]time.Duration, len(rs))
	for i, r := range rs {
		h[i] = r.hop
	}
	sort.Slice(h, func(i, j int) bool { return h[i] < h[j] })
	return h[len(h)/2]
}

func dashes(n int) string { return strings.Repeat("-", n) }

func goMaxProcs() int { return runtime.GOMAXPROCS(0) }

func get(ctx context.Context, c *http.Client, u string) error {
	return send(ctx, c, http.MethodGet, u, "", "")
}

// send makes one request (with a JSON body unless body is empty, and an
// Authorization header unless authorization is empty) and wants a 200.
func send(ctx context.Context, c *http.Client, method, u, body, authorization string) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func serveHTTP(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	s := &http.Server{Handler: h}
	go labelled("proxy", func() { _ = s.Serve(ln) })
	return ln.Addr().String(), func() { s.Close() }, nil
}

// startGateway serves a gateway configured by cfg in front of upURL on
// loopback ports of its own.
func startGateway(ctx context.Context, cfg app.Config, upURL string, log *slog.Logger) (httpAddr, grpcAddr string, stop func(), err error) {
	hl, gl, err := listenPair()
	if err != nil {
		return "", "", nil, err
	}
	return serveGateway(ctx, cfg, hl, gl, upURL, log)
}

// listenPair opens the REST and gRPC listeners of one gateway.
func listenPair() (hl, gl net.Listener, err error) {
	if hl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, nil, err
	}
	if gl, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		hl.Close()
		return nil, nil, err
	}
	return hl, gl, nil
}

// serveGateway serves a gateway configured by cfg in front of upURL on hl
// and gl, and its admin listener on cfg.AdminAddr when set; stop shuts it
// down and releases it.
func serveGateway(ctx context.Context, cfg app.Config, hl, gl net.Listener, upURL string, log *slog.Logger) (httpAddr, grpcAddr string, stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	cfg.ServiceA, cfg.ServiceB, cfg.ShutdownTimeout = []string{upURL}, []string{upURL}, time.Second
	if cfg.Auth.JWKS == "" {
		cfg.Auth.Disabled = true
	}
	if cfg.ServiceSigningKey == "" {
		// The bench upstream verifies nothing, but the gateway signs every
		// call as it would in production: that cost is measured too.
		if cfg.ServiceSigningKey, err = benchServiceKey(); err != nil {
			cancel()
			return "", "", nil, err
		}
	}
	var g *app.Gateway
	// Labelled from the start: goroutines the gateway starts while it is
	// built (gRPC stream workers, health probers) are its own too.
	part := partOf(ctx)
	labelled(part, func() { g, err = app.New(ctx, cfg, log) })
	if err != nil {
		cancel()
		hl.Close()
		gl.Close()
		return "", "", nil, err
	}
	var al net.Listener // the admin listener, only where cfg names one
	if cfg.AdminAddr != "" {
		if al, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			cancel()
			hl.Close()
			gl.Close()
			g.Close()
			return "", "", nil, err
		}
	}
	done := make(chan struct{})
	go labelled(part, func() {
		defer close(done)
		if al != nil {
			_ = g.Server.ServeAdminListeners(ctx, hl, gl, al)
			return
		}
		_ = g.Server.ServeListeners(ctx, hl, gl)
	})
	return hl.Addr().String(), gl.Addr().String(), func() { cancel(); <-done; g.Close() }, nil
}

// offeredRate is -rate: when positive, the clients of a measurement share
// one pace of that many requests per second, so that targets are compared
// at the same load (latency) rather than at their own saturation
// (throughput, where a slower target's queue also lengthens its latency).
var offeredRate float64

// measure runs c clients against t for d and returns throughput and
// latency percentiles.
func measure(t target, c int, d time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var pace *rate.Limiter
	if offeredRate > 0 {
		pace = rate.NewLimiter(rate.Limit(offeredRate), 1)
	}
	var errs atomic.Int64
	lat := make([][]time.Duration, c)
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), cpuTime()
	var hop0 time.Duration
	if t.proc != nil {
		hop0 = t.proc.cpu()
	}
	for i := 0; i < c; i++ {
		wg.Add(1)
		go labelled("client", func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				if pace != nil && pace.Wait(ctx) != nil {
					break
				}
				t0 := time.Now()
				if err := t.do(ctx); err != nil {
					// gRPC may report the measurement's own deadline a hair
					// before ctx does; that is the end of the run, not an error.
					if ctx.Err() == nil && status.Code(err) != codes.DeadlineExceeded && errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "%s: first error: %v\n", t.name, err)
					}
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	var hop time.Duration
	if t.proc != nil {
		hop = t.proc.cpu() - hop0
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res := result{n: len(all), rps: float64(len(all)) / elapsed.Seconds(), errors: errs.Load()}
	if n := len(all); n > 0 {
		res.p50 = all[n/2]
		res.p99 = all[n*99/100]
		res.cpu = cpu / time.Duration(n)
		res.hop = hop / time.Duration(n)
	}
	return res
}

// labelled runs f with the profiler label part=name, which every goroutine
// it starts inherits (a server's connections, a transport's dials), so that
// one CPU profile of the whole run splits by part:
// go tool pprof -tagfocus part=gateway.
func labelled(name string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("part", name), func(context.Context) { f() })
}

// partKey carries the profiler part label of the gateway that
// serveGateway starts; "gateway" when unset.
type partKey struct{}

func withPart(ctx context.Context, part string) context.Context {
	return context.WithValue(ctx, partKey{}, part)
}

func partOf(ctx context.Context) string {
	if p, ok := ctx.Value(partKey{}).(string); ok {
		return p
	}
	return "gateway"
}

func median(rs []result) result {
	s := append([]result(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].rps < s[j].rps })
	return s[len(s)/2]
}

// benchServiceKey writes a new service signing key to a temporary file
// (once per run) and returns its path.
var benchServiceKey = sync.OnceValues(func() (string, error) {
	s, err := devkeys.Generate("EdDSA", "bench-service")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "gwbench-key-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "service-signing-key.json")
	return path, s.Save(path)
})
