package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// The process mode (-gateway-bin) runs each intermediary in a process of
// its own: the gateway binary as it ships (JSON log to a file), and the
// tuned reverse proxy as a child gwbench (-serve-proxy). The load generator
// and the upstream stay in this process. Besides req/s and latency it then
// reads each intermediary's own CPU time per request (the hop's cost,
// untouched by the client's and the upstream's) and its resident memory
// from /proc, and -soak keeps the gateway under load to watch its RSS.

// child is an intermediary process.
type child struct {
	name string
	cmd  *exec.Cmd
}

// cpu is the child's CPU time so far (user and system), from
// /proc/<pid>/stat; 0 where /proc is missing.
func (c *child) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// rss is the child's resident set size in bytes, from /proc/<pid>/status.
func (c *child) rss() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP polls u until it answers, for up to 30 s.
func waitHTTP(client *http.Client, u string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within 30s: %w", u, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startChild starts bin with args, its output in logPath, and waits until
// readyURL answers.
func startChild(name, bin, logPath, readyURL string, client *http.Client, args ...string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(goMaxProcs()))
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	c := &child{name: name, cmd: cmd}
	if err := waitHTTP(client, readyURL); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// serveProxy is the child side of the proxy: the tuned reverse proxy to
// upstream on addr, until SIGTERM.
func serveProxy(addr, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.Transport = tunedTransport()
	srv := &http.Server{Addr: addr, Handler: rp}
	go func() {
		sig := make(chan os.Signal, 1)
		signalNotify(sig)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// runProcesses is the process mode; see the comment at the top.
func runProcesses(ctx context.Context, gatewayBin, upURL string, client *http.Client, c, rounds int, d, soak time.Duration, withAuth bool) error {
	dir, err := os.MkdirTemp("", "gwbench-proc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// With withAuth the gateways check tokens and every client, the
	// proxy's included, sends one admin token (verified once, then served
	// from the gateway's cache); without, the gateways run -auth-disabled.
	authArgs, authorization := []string{"-auth-disabled"}, ""
	if withAuth {
		jwks, token, err := benchToken(dir, "shop:admin")
		if err != nil {
			return err
		}
		authArgs = []string{"-auth-jwks", jwks, "-auth-issuer", benchIssuer, "-auth-audience", benchIssuer}
		authorization = "Bearer " + token
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	proxyAddr, err := freeAddr()
	if err != nil {
		return err
	}
	proxy, err := startChild("proxy", self, filepath.Join(dir, "proxy.log"), "http://"+proxyAddr+"/stock/1", client,
		"-serve-proxy", proxyAddr, "-upstream", upURL)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer proxy.stop()
	const getBase, postBase = "proxy process, GET (baseline)", "proxy process, POST (baseline)"
	getT := func(name, base, addr string, ch *child) target {
		u := "http://" + addr + "/stock/1"
		return target{name: name, base: base, proc: ch, do: func(ctx context.Context) error {
			return send(ctx, client, http.MethodGet, u, "", authorization)
		}}
	}
	postT := func(name, base, addr string, ch *child) target {
		u := "http://" + addr + "/stock/update"
		return target{name: name, base: base, proc: ch, do: func(ctx context.Context) error {
			return send(ctx, client, http.MethodPost, u, mutationJSON, authorization)
		}}
	}
	gets := []target{getT(getBase, "", proxyAddr, proxy)}
	grpcs := []target{}
	posts := []target{postT(postBase, "", proxyAddr, proxy)}
	var gws []*child
	// Each entry is a path, or label=path to compare builds in one run.
	for i, spec := range strings.Split(gatewayBin, ",") {
		label, bin, ok := strings.Cut(spec, "=")
		if !ok {
			label, bin = "gateway binary", spec
		}
		gw, httpAddr, grpcAddr, err := startGatewayProcess(client, bin, filepath.Join(dir, fmt.Sprintf("gateway-%d.log", i)), upURL, authArgs)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		defer gw.stop()
		gws = append(gws, gw)
		cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		stock := stockv1.NewStockServiceClient(cc)
		gets = append(gets, getT(label+", REST GET", getBase, httpAddr, gw))
		grpcs = append(grpcs, target{name: label + ", gRPC GetStock", base: getBase, proc: gw, do: func(ctx context.Context) error {
			if authorization != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
			}
			_, err := stock.GetStock(ctx, &stockv1.GetStockRequest{ProductId: 1})
			return err
		}})
		posts = append(posts, postT(label+", REST POST", postBase, httpAddr, gw))
	}
	targets := append(append(gets, grpcs...), posts...)
	all := measureAll(targets, c, rounds, d)
	fmt.Printf("Intermediaries in processes of their own (GOMAXPROCS=%d each), %d clients, %d rounds of %s, median per target; hop cpu/req is the intermediary's own CPU per request\n\n",
		goMaxProcs(), c, rounds, d)
	printTable(targets, all)
	fmt.Printf("\nRSS after the rounds: proxy %.1f MiB", mib(proxy.rss()))
	for i, gw := range gws {
		fmt.Printf(", %s %.1f MiB", gets[i+1].name, mib(gw.rss()))
	}
	fmt.Println()
	if soak > 0 {
		// The last gateway listed (the build under test when comparing).
		n := len(gws)
		return soakGateway(gws[n-1], gets[n], posts[n], c, soak)
	}
	return nil
}

// startGatewayProcess starts the gateway binary bin on free loopback ports
// in front of upURL, events off, logging JSON to logPath.
func startGatewayProcess(client *http.Client, bin, logPath, upURL string, authArgs []string) (gw *child, httpAddr, grpcAddr string, err error) {
	if httpAddr, err = freeAddr(); err != nil {
		return nil, "", "", err
	}
	if grpcAddr, err = freeAddr(); err != nil {
		return nil, "", "", err
	}
	args := []string{"-http-addr", httpAddr, "-grpc-addr", grpcAddr, "-service-a", upURL, "-service-b", upURL,
		"-kafka-brokers=", "-log-format", "json"}
	// Flags a build being compared may predate: given only to a binary
	// that has them.
	if binaryHasFlag(bin, "admin-addr") {
		args = append(args, "-admin-addr=")
	}
	if binaryHasFlag(bin, "service-signing-key") {
		key, kerr := benchServiceKey()
		if kerr != nil {
			return nil, "", "", kerr
		}
		args = append(args, "-service-signing-key", key)
	}
	args = append(args, authArgs...)
	gw, err = startChild("gateway", bin, logPath, "http://"+httpAddr+"/healthz", client, args...)
	return gw, httpAddr, grpcAddr, err
}

// binaryHasFlag reports whether the gateway binary bin lists -name in its
// usage.
func binaryHasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	return strings.Contains(string(out), "  -"+name+" ") || strings.Contains(string(out), "  -"+name+"\n")
}

// soakGateway keeps the gateway under GET and POST load for d and prints
// its RSS every tenth of d: a leak shows as growth after the first minute.
func soakGateway(gw *child, get, post target, c int, d time.Duration) error {
	fmt.Printf("\nSoak: %s of GET and POST through the gateway binary, %d clients\n\n| elapsed | req/s | RSS |\n|---|---:|---:|\n", d, c)
	step := d / 10
	mixed := target{name: "soak", do: func(ctx context.Context) error {
		if err := get.do(ctx); err != nil {
			return err
		}
		return post.do(ctx)
	}}
	start := time.Now()
	var first, last int64
	for i := 1; i <= 10; i++ {
		r := measure(mixed, c, step)
		last = gw.rss()
		if i == 1 {
			first = last
		}
		fmt.Printf("| %s | %.0f | %.1f MiB |\n", time.Since(start).Round(time.Second), 2*r.rps, mib(last))
	}
	fmt.Printf("\nRSS growth from the first step to the last: %+.1f MiB\n", mib(last-first))
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// signalNotify delivers SIGTERM and SIGINT to c.
func signalNotify(c chan<- os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
