package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClusterOptions tune a Cluster. The zero value starts 2 gateways and 2
// instances of each service.
type ClusterOptions struct {
	// Gateways is the number of gateways; each balances over every instance.
	// Default 2.
	Gateways int
	// Instances is the number of instances of service A and of service B.
	// Default 2.
	Instances int
	// ServiceEnv are extra KEY=VALUE environment entries for every service
	// process (WEB_CONCURRENCY, for example).
	ServiceEnv []string
	// StartTimeout bounds the wait for each process to become ready.
	// Default 120s.
	StartTimeout time.Duration
}

func (o *ClusterOptions) setDefaults() {
	if o.Gateways <= 0 {
		o.Gateways = 2
	}
	if o.Instances <= 0 {
		o.Instances = 2
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 120 * time.Second
	}
}

// Cluster is the shop as it runs scaled out on several machines: gateways
// in front of several instances of each service, the instances of a service
// sharing one PostgreSQL database, and the broker. Its databases and topics
// are its own; everything is stopped and dropped in the Cleanup of the test
// that started it.
type Cluster struct {
	env
	opts ClusterOptions

	gateways, a, b []string // base URLs

	startedPG bool // stop PostgreSQL at the end

	mu    sync.Mutex
	procs []*process // in start order
}

// StartCluster starts PostgreSQL when it is not running
// (scripts/postgres.sh, PG_PORT; stopped again at the end), creates the cluster's two databases,
// starts the instances of A and B and then the gateways on free loopback
// ports, and waits until each is ready. Gateways publish their events to
// the cluster's own topics (see EventTopics). It fails tb when anything
// does not come up within opts.StartTimeout.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	opts.setDefaults()
	c := &Cluster{env: newEnv(tb), opts: opts}
	root, brokers := c.root, c.brokers
	tb.Cleanup(c.stopAll)
	if _, err := c.postgres("status"); err != nil {
		if out, err := c.postgres("start"); err != nil {
			tb.Fatalf("harness: scripts/postgres.sh start: %v\n%s", err, out)
		}
		c.startedPG = true
	}
	dbA, dbB := c.createDatabase("a"), c.createDatabase("b")

	n := opts.Instances
	ports := freePorts(tb, 2*n+2*opts.Gateways)
	type started struct {
		p   *process
		url string
	}
	var services []started
	for i := 0; i < n; i++ {
		c.a = append(c.a, serviceURL(ports[i]))
		c.b = append(c.b, serviceURL(ports[n+i]))
	}
	for i := 0; i < n; i++ {
		for _, svc := range []struct {
			name, db, group string
			port            int
		}{
			{nameServiceA, dbA, "service-a-" + c.id, ports[i]},
			{nameServiceB, dbB, "service-b-" + c.id, ports[n+i]},
		} {
			name := fmt.Sprintf("%s-%d", svc.name, i+1)
			// B's instance i calls A's instance i (B takes one URL of A).
			env := serviceEnv(svc.port, svc.db, svc.group, c.id, brokers, c.a[i], append(c.identityEnv(), opts.ServiceEnv...))
			p := c.start(name, filepath.Join(root, svc.name), env, c.python, "-m", "app")
			services = append(services, started{p, serviceURL(svc.port) + "/readyz"})
		}
	}
	for _, s := range services {
		waitReady(tb, s.p, s.url, opts.StartTimeout)
	}
	var gateways []started
	for i := 0; i < opts.Gateways; i++ {
		httpPort, grpcPort := ports[2*n+2*i], ports[2*n+2*i+1]
		url := serviceURL(httpPort)
		c.gateways = append(c.gateways, url)
		args := []string{
			"-http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
			"-grpc-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(grpcPort)),
			"-service-a", strings.Join(c.a, ","),
			"-service-b", strings.Join(c.b, ","),
			"-kafka-brokers=" + strings.Join(brokers, ","),
			"-kafka-topics", c.topicMap(),
			"-outbox-dir", filepath.Join(c.dir, fmt.Sprintf("outbox-%d", i+1)),
			"-log-format", "text",
			"-log-level", "warn",
		}
		if gatewayHasFlag(c.gatewayBin, "admin-addr") {
			args = append(args, "-admin-addr=") // several gateways: none on the default address
		}
		args = append(args, c.authArgs(false)...)
		p := c.start(fmt.Sprintf("gateway-%d", i+1), root, os.Environ(), c.gatewayBin, args...)
		gateways = append(gateways, started{p, url + "/readyz"})
	}
	for _, g := range gateways {
		waitReady(tb, g.p, g.url, opts.StartTimeout)
	}
	return c
}

// GatewayURLs are the gateways' REST base URLs.
func (c *Cluster) GatewayURLs() []string { return c.gateways }

// ServiceAURLs are the base URLs of service A's instances.
func (c *Cluster) ServiceAURLs() []string { return c.a }

// ServiceBURLs are the base URLs of service B's instances.
func (c *Cluster) ServiceBURLs() []string { return c.b }

// eventTopics are the gateway's logical event topics.
var eventTopics = []string{"shop.stock.v1", "shop.cart.v1", "shop.order.v1"}

// EventTopic is the cluster's own name of the gateway's logical event
// topic (shop.cart.v1 and so on).
func (c *Cluster) EventTopic(logical string) string { return "e2e." + c.id + "." + logical }

func (c *Cluster) topicMap() string {
	pairs := make([]string, len(eventTopics))
	for i, t := range eventTopics {
		pairs[i] = t + "=" + c.EventTopic(t)
	}
	return strings.Join(pairs, ",")
}

func serviceURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

func (c *Cluster) start(name, dir string, env []string, bin string, args ...string) *process {
	c.tb.Helper()
	p, err := startProcess(name, filepath.Join(c.dir, name+".log"), dir, env, bin, args...)
	if err != nil {
		c.tb.Fatalf("harness: start %s: %v", name, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

func (c *Cluster) postgres(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(c.root, "scripts", "postgres.sh")}, args...)...)
	cmd.Dir = c.root
	return cmd.CombinedOutput()
}

func (c *Cluster) dbName(suffix string) string { return "cluster_" + c.id + "_" + suffix }

// createDatabase makes the empty database cluster_<id>_<suffix> and returns its URL.
func (c *Cluster) createDatabase(suffix string) string {
	c.tb.Helper()
	name := c.dbName(suffix)
	if out, err := c.postgres("psql", "postgres", "-q", "-c", "CREATE DATABASE "+name); err != nil {
		c.tb.Fatalf("harness: create database %s: %v\n%s", name, err, out)
	}
	out, err := c.postgres("url", name)
	if err != nil {
		c.tb.Fatalf("harness: scripts/postgres.sh url %s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// stopAll is the Cluster's cleanup: gateways first, then the services,
// then its topics and databases; the log tails when the test failed.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(10 * time.Second); err != nil {
			c.tb.Errorf("harness: stop %s: %v", procs[i].name, err)
		}
	}
	topics := []string{syncTopic(c.id, "cart-changes.v1"), syncTopic(c.id, "order-events.v1")}
	for _, t := range eventTopics {
		topics = append(topics, c.EventTopic(t))
	}
	if err := deleteTopics(topics...); err != nil {
		c.tb.Logf("harness: %v", err)
	}
	for _, suffix := range []string{"a", "b"} {
		if out, err := c.postgres("psql", "postgres", "-q", "-c", "DROP DATABASE IF EXISTS "+c.dbName(suffix)+" WITH (FORCE)"); err != nil {
			c.tb.Logf("harness: drop database: %v\n%s", err, out)
		}
	}
	if c.startedPG {
		if out, err := c.postgres("stop"); err != nil {
			c.tb.Logf("harness: scripts/postgres.sh stop: %v\n%s", err, out)
		}
	}
	if c.tb.Failed() {
		for _, p := range procs {
			c.tb.Logf("harness: last lines of %s:\n%s", p.log, p.tail(30))
		}
	}
}
