// Package harness starts the whole shop stack (service_a, service_b and the
// gateway, against the real Kafka broker) as local processes for integration
// and end-to-end tests, and reads the gateway's events back from Kafka.
//
// A test calls Start and talks to the Stack it returns:
//
//	s := harness.Start(t, harness.Options{})
//	status, _, body := s.Do(t, "GET", "/stock", "")
//	conn := s.GRPCConn(t)
//
// Every Stack has its own free loopback ports, its own SQLite files and
// outbox under tb.TempDir(), and its own consumer groups and service sync
// topics, so stacks of parallel tests and of earlier runs do not see each
// other's data. The gateway's public topics (shop.*.v1) are shared by every
// stack on the broker: read them with an EventReader and match events on
// their key or request id.
//
// The broker is not started here: run `scripts/kafka.sh start` first (make
// test does). Start fails the test, never skips it, when the broker does not
// answer, so that CI fails when it could not start one.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options tune a Stack. The zero value starts the default stack.
type Options struct {
	// DatabaseURLA is service_a's DATABASE_URL. Default: an SQLite file in
	// the test's temp dir. Set a postgresql:// URL to run on PostgreSQL.
	DatabaseURLA string
	// DatabaseURLB is service_b's DATABASE_URL. Default: an SQLite file in
	// the test's temp dir.
	DatabaseURLB string
	// ServiceAEnv and ServiceBEnv are extra KEY=VALUE environment entries for
	// the services; they win over the harness's own.
	ServiceAEnv, ServiceBEnv []string
	// GatewayArgs are extra gateway flags, appended after the harness's own
	// (so a repeated flag overrides the harness's value).
	GatewayArgs []string
	// GatewayEnv are extra KEY=VALUE environment entries for the gateway.
	GatewayEnv []string
	// NoEvents starts the gateway without -kafka-brokers (events off).
	NoEvents bool
	// NoAuth starts the gateway with -auth-disabled instead of the
	// harness's JWKS.
	NoAuth bool
	// StartTimeout bounds the wait for each process to become ready.
	// Default 60s.
	StartTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
}

// Stack is a running service_a, service_b and gateway. Its methods may be
// called from the test's goroutine only; everything is stopped in the
// Cleanup of the test that started it.
type Stack struct {
	env
	opts Options

	httpPort, grpcPort, adminPort, aPort, bPort int

	mu         sync.Mutex
	procs      map[string]*process
	conn       *grpc.ClientConn
	kafkaUp    bool
	adminToken string
}

// env is what every stack or cluster of a test has: the test, a private id
// (topic and group names) and temp dir, the repository, the broker, the
// gateway binary and the venv's python.
type env struct {
	tb                 testing.TB
	id, dir, root      string
	brokers            []string
	gatewayBin, python string
}

// newEnv holds the broker for tb (see HoldKafka) and checks that it answers,
// builds the gateway (once per test process, or uses $GATEWAY_BIN) and finds
// the venv, and writes the JWKS of the harness's signing key (the gateways'
// -auth-jwks); it fails tb when one is missing.
func newEnv(tb testing.TB) env {
	tb.Helper()
	root := RepoRoot(tb)
	brokers := Brokers()
	HoldKafka(tb)
	if err := pingBroker(brokers, 30*time.Second); err != nil {
		tb.Fatalf("harness: the Kafka broker at %s does not answer (%v); start it with `scripts/kafka.sh start` (make test does)",
			strings.Join(brokers, ","), err)
	}
	bin := GatewayBinary(tb)
	python := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		tb.Fatalf("harness: %s not found (%v); create the venv with `make venv`", python, err)
	}
	e := env{tb: tb, id: newID(), dir: tb.TempDir(), root: root, brokers: brokers, gatewayBin: bin, python: python}
	e.writeJWKS()
	e.writeServiceKeys()
	return e
}

// Process names, also the prefixes of their log files in the temp dir.
const (
	nameServiceA = "service_a"
	nameServiceB = "service_b"
	nameGateway  = "gateway"
)

// Start checks the broker, builds the gateway (once per test process, or
// uses $GATEWAY_BIN), starts service_a, service_b and the gateway on free
// loopback ports and waits until each is ready. It fails tb when anything
// does not come up within opts.StartTimeout, with the tail of the process
// logs. Everything is stopped in tb.Cleanup.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	opts.setDefaults()
	s := &Stack{
		env:     newEnv(tb),
		opts:    opts,
		procs:   map[string]*process{},
		kafkaUp: true,
	}
	ports := freePorts(tb, 5)
	s.httpPort, s.grpcPort, s.aPort, s.bPort, s.adminPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	tb.Cleanup(s.stopAll)

	// A and B start together: neither needs the other to become ready.
	s.startService(nameServiceA, false)
	s.startService(nameServiceB, false)
	s.waitReady(nameServiceA, s.serviceURL(s.aPort)+"/readyz")
	s.waitReady(nameServiceB, s.serviceURL(s.bPort)+"/readyz")
	s.startGateway()
	s.waitReady(nameGateway, s.RESTURL()+"/readyz")
	return s
}

// RESTURL is the gateway's REST base URL, http://127.0.0.1:PORT.
func (s *Stack) RESTURL() string { return s.serviceURL(s.httpPort) }

// GRPCAddr is the gateway's gRPC address, 127.0.0.1:PORT.
func (s *Stack) GRPCAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.grpcPort)) }

// AdminURL is the base URL of the gateway's admin listener,
// http://127.0.0.1:PORT: /metrics and /readyz with every dependency's
// details.
func (s *Stack) AdminURL() string { return s.serviceURL(s.adminPort) }

// ServiceAURL is service_a's base URL (for checks that bypass the gateway).
func (s *Stack) ServiceAURL() string { return s.serviceURL(s.aPort) }

// ServiceBURL is service_b's base URL (for checks that bypass the gateway).
func (s *Stack) ServiceBURL() string { return s.serviceURL(s.bPort) }

// Dir is the stack's temp dir: databases, outbox, and one log file per
// process (service_a.log, service_b.log, gateway.log).
func (s *Stack) Dir() string { return s.dir }

// GatewayLog is the file that holds the gateway's standard output and
// error (its log), across restarts.
func (s *Stack) GatewayLog() string { return filepath.Join(s.dir, nameGateway+".log") }

// OutboxDir is the gateway's -outbox-dir, kept across gateway restarts.
func (s *Stack) OutboxDir() string { return filepath.Join(s.dir, "outbox") }

// Brokers returns the Kafka bootstrap addresses.
func (s *Stack) Brokers() []string { return s.brokers }

// GRPCConn returns a client connection to the gateway's gRPC address,
// shared by the Stack's callers and closed at cleanup. Calls carry the
// stack's admin token unless their context has authorization metadata of
// its own (WithToken) or is marked NoToken. It reconnects by
// itself after StopGateway/StartGateway.
func (s *Stack) GRPCConn(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	admin := s.AdminToken(tb) // before s.mu: AdminToken takes it too
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(defaultToken(admin)))
		if err != nil {
			tb.Fatalf("harness: grpc.NewClient(%s): %v", s.GRPCAddr(), err)
		}
		s.conn = conn
	}
	return s.conn
}

// StopServiceB stops service_b (SIGTERM, then SIGKILL after 10s) and waits
// until it has exited; its database is kept.
func (s *Stack) StopServiceB() {
	s.tb.Helper()
	s.stop(nameServiceB, false)
}

// StartServiceB starts service_b again on the same port and database and
// waits until it is ready.
func (s *Stack) StartServiceB() {
	s.tb.Helper()
	s.startService(nameServiceB, true)
	s.waitReady(nameServiceB, s.ServiceBURL()+"/readyz")
}

// KillServiceB kills service_b with SIGKILL (whatever it was doing is
// lost; a paused one dies too) and waits until it has exited.
func (s *Stack) KillServiceB() {
	s.tb.Helper()
	s.stop(nameServiceB, true)
}

// PauseServiceB freezes service_b with SIGSTOP: its port still accepts
// connections (the kernel queues them) but nothing answers, the way a hung
// process looks to its callers. ResumeServiceB (or the Stack's cleanup)
// resumes it.
func (s *Stack) PauseServiceB() {
	s.tb.Helper()
	s.signal(nameServiceB, syscall.SIGSTOP)
}

// ResumeServiceB resumes service_b after PauseServiceB (SIGCONT).
func (s *Stack) ResumeServiceB() {
	s.tb.Helper()
	s.signal(nameServiceB, syscall.SIGCONT)
}

func (s *Stack) signal(name string, sig syscall.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		s.tb.Fatalf("harness: %s is not running", name)
	}
	if err := p.signal(sig); err != nil {
		s.tb.Fatalf("harness: %v", err)
	}
}

// KillGateway kills the gateway with SIGKILL (no drain, no outbox flush)
// and waits until it has exited.
func (s *Stack) KillGateway() {
	s.tb.Helper()
	s.stop(nameGateway, true)
}

// StopGateway stops the gateway with SIGTERM (a graceful drain) and waits
// until it has exited, SIGKILL after 30s.
func (s *Stack) StopGateway() {
	s.tb.Helper()
	s.stop(nameGateway, false)
}

// StartGateway starts the gateway again on the same ports, services and
// outbox dir, and waits until it serves (/healthz: it may report not ready
// while a service or the broker is down on purpose).
func (s *Stack) StartGateway() {
	s.tb.Helper()
	s.startGateway()
	s.waitReady(nameGateway, s.RESTURL()+"/healthz")
}

// StopKafka stops the shared broker with `scripts/kafka.sh stop`. The broker
// is shared by every test on the machine, in every test process, so it
// first waits until no other top-level test holds a Stack or an EventReader
// (a cross-process lock; new ones wait until StartKafka). If the test ends
// with the broker stopped, it is started again at cleanup.
func (s *Stack) StopKafka() {
	s.tb.Helper()
	setKafkaLock(s.tb, syscall.LOCK_EX)
	s.kafkaScript("stop")
	s.mu.Lock()
	s.kafkaUp = false
	s.mu.Unlock()
}

// StartKafka starts the shared broker with `scripts/kafka.sh start`, which
// returns once it serves metadata.
func (s *Stack) StartKafka() {
	s.tb.Helper()
	s.kafkaScript("start")
	s.mu.Lock()
	s.kafkaUp = true
	s.mu.Unlock()
	setKafkaLock(s.tb, syscall.LOCK_SH)
}

func (s *Stack) kafkaScript(cmd string) {
	s.tb.Helper()
	out, err := runKafkaScript(s.root, cmd)
	if err != nil {
		s.tb.Fatalf("harness: scripts/kafka.sh %s: %v\n%s", cmd, err, out)
	}
}

func (s *Stack) serviceURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// topic names the stack's private copy of a service sync topic.
func (s *Stack) topic(name string) string { return syncTopic(s.id, name) }

func (s *Stack) serviceEnv(name string) []string {
	var port int
	var db, group string
	var extra []string
	switch name {
	case nameServiceA:
		port, db, group, extra = s.aPort, s.opts.DatabaseURLA, "service-a-"+s.id, s.opts.ServiceAEnv
		if db == "" {
			db = filepath.Join(s.dir, "service_a.db")
		}
	case nameServiceB:
		port, db, group, extra = s.bPort, s.opts.DatabaseURLB, "service-b-"+s.id, s.opts.ServiceBEnv
		if db == "" {
			db = filepath.Join(s.dir, "service_b.db")
		}
	}
	return serviceEnv(port, db, group, s.id, s.brokers, s.ServiceAURL(), append(s.identityEnv(), extra...))
}

// serviceEnv is the environment of a service process of the stack or
// cluster id: its port, database and consumer group, the broker, the id's
// private sync topics, where B finds A, then extra.
func serviceEnv(port int, db, group, id string, brokers []string, aURL string, extra []string) []string {
	env := append(os.Environ(),
		"HOST=127.0.0.1",
		"PORT="+strconv.Itoa(port),
		"DATABASE_URL="+db,
		"KAFKA_BROKERS="+strings.Join(brokers, ","),
		"KAFKA_GROUP_ID="+group,
		"CART_CHANGES_TOPIC="+syncTopic(id, "cart-changes.v1"),
		"ORDER_EVENTS_TOPIC="+syncTopic(id, "order-events.v1"),
		"SERVICE_A_URL="+aURL,
		// Sync quickly: the tests wait for B to see A's cart changes.
		"OUTBOX_POLL_SECONDS=0.2",
		"KAFKA_RETRY_MAX_SECONDS=2",
		"PYTHONUNBUFFERED=1",
	)
	return append(env, extra...)
}

// syncTopic names the private copy of a service sync topic of the stack or cluster id.
func syncTopic(id, name string) string { return "e2e." + id + "." + name }

func (s *Stack) startService(name string, restart bool) {
	s.tb.Helper()
	p, err := startProcess(name, filepath.Join(s.dir, name+".log"),
		filepath.Join(s.root, name), s.serviceEnv(name), s.python, "-m", "app")
	if err != nil {
		s.tb.Fatalf("harness: start %s: %v", name, err)
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
}

func (s *Stack) gatewayArgs() []string {
	args := []string{
		"-http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort)),
		"-grpc-addr", s.GRPCAddr(),
		"-service-a", s.ServiceAURL(),
		"-service-b", s.ServiceBURL(),
		"-log-format", "text",
	}
	if gatewayHasFlag(s.gatewayBin, "kafka-brokers") {
		brokers := strings.Join(s.brokers, ",")
		if s.opts.NoEvents {
			brokers = "" // the flag's default is 127.0.0.1:9092
		}
		args = append(args, "-kafka-brokers="+brokers)
	}
	if gatewayHasFlag(s.gatewayBin, "outbox-dir") {
		args = append(args, "-outbox-dir", s.OutboxDir())
	}
	if gatewayHasFlag(s.gatewayBin, "admin-addr") {
		args = append(args, "-admin-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.adminPort)))
	}
	args = append(args, s.authArgs(s.opts.NoAuth)...)
	return append(args, s.opts.GatewayArgs...)
}

func (s *Stack) startGateway() {
	s.tb.Helper()
	env := append(os.Environ(), s.opts.GatewayEnv...)
	p, err := startProcess(nameGateway, s.GatewayLog(), s.root, env, s.gatewayBin, s.gatewayArgs()...)
	if err != nil {
		s.tb.Fatalf("harness: start gateway: %v", err)
	}
	s.mu.Lock()
	s.procs[nameGateway] = p
	s.mu.Unlock()
}

// waitReady polls url until it answers 200, the process exits, or the
// start timeout passes; the last two fail the test with the log tail.
func (s *Stack) waitReady(name, url string) {
	s.tb.Helper()
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	waitReady(s.tb, p, url, s.opts.StartTimeout)
}

// waitReady polls url until it answers 200, p exits, or timeout passes; the
// last two fail tb with p's log tail.
func waitReady(tb testing.TB, p *process, url string, timeout time.Duration) {
	tb.Helper()
	name := p.name
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			tb.Fatalf("harness: %s exited before it was ready (%v)\n%s", name, p.err, p.tail(60))
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				select {
				case <-p.done:
					// Something else answered on its port.
					tb.Fatalf("harness: %s exited while %s answered (%v)\n%s", name, url, p.err, p.tail(60))
				default:
				}
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("harness: %s not ready at %s within %v (last: %s)\n%s", name, url, timeout, last, p.tail(60))
}

// stop ends one process and waits for it; a stopped one is a no-op.
func (s *Stack) stop(name string, kill bool) {
	s.tb.Helper()
	s.mu.Lock()
	p := s.procs[name]
	s.mu.Unlock()
	if p == nil {
		return
	}
	grace := 10 * time.Second
	if name == nameGateway {
		grace = 30 * time.Second
	}
	if kill {
		grace = 0
	}
	if err := p.stop(grace); err != nil {
		s.tb.Errorf("harness: stop %s: %v", name, err)
	}
}

// stopAll is the Stack's cleanup: the gateway first (it drains its calls
// to the services), then the services; the log tails when the test failed.
func (s *Stack) stopAll() {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	kafkaUp := s.kafkaUp
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if !kafkaUp {
		if out, err := runKafkaScript(s.root, "start"); err != nil {
			s.tb.Errorf("harness: restarting the broker the test stopped: %v\n%s", err, out)
		}
	}
	for _, name := range []string{nameGateway, nameServiceB, nameServiceA} {
		s.mu.Lock()
		p := s.procs[name]
		s.mu.Unlock()
		if p == nil {
			continue
		}
		if err := p.stop(10 * time.Second); err != nil {
			s.tb.Errorf("harness: stop %s: %v", name, err)
		}
	}
	if err := deleteTopics(s.topic("cart-changes.v1"), s.topic("order-events.v1")); err != nil {
		s.tb.Logf("harness: %v", err)
	}
	if s.tb.Failed() {
		for _, name := range []string{nameServiceA, nameServiceB, nameGateway} {
			if p := s.procs[name]; p != nil {
				s.tb.Logf("harness: last lines of %s:\n%s", p.log, p.tail(40))
			}
		}
	}
}

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Brokers returns the Kafka bootstrap addresses from $KAFKA_BROKERS
// (comma-separated), default 127.0.0.1:9092.
func Brokers() []string {
	var out []string
	for _, b := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:9092"}
	}
	return out
}
