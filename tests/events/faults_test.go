package events_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// Sizes of the fault tests. Service A (FastAPI on SQLite) is the
// bottleneck at about 400 SetStockLevel/s through the gateway on two
// cores, so 10,000 mutations take about 25 s; EVENTS_LOAD scales them
// (EVENTS_LOAD=0.1 for a quick run).
const (
	outageMutations = 10_000
	outageClients   = 100
	killMutations   = 3_000
	killClients     = 50
	products        = 4
)

func scaled(n int) int {
	if f, err := strconv.ParseFloat(os.Getenv("EVENTS_LOAD"), 64); err == nil && f > 0 {
		return max(1, int(float64(n)*f))
	}
	return n
}

// TestKafkaOutage is fault test (a): the broker is stopped and started
// twice while mutations run from 100 concurrent clients. Every mutation
// answered with success must have its event in Kafka (0 lost); duplicates
// are counted and allowed (consumers dedupe on ce_id).
func TestKafkaOutage(t *testing.T) {
	n := scaled(outageMutations)
	s, reader, l, done := startLoad(t, "outage", 100, n, outageClients)
	start := time.Now()
	var outages []time.Duration
	for _, at := range [][2]float64{{0.10, 0.30}, {0.55, 0.70}} {
		l.waitProgress(at[0], n, done)
		down := time.Now()
		s.StopKafka()
		t.Logf("broker stopped at %d/%d mutations", l.finished.Load(), n)
		l.waitProgress(at[1], n, done)
		s.StartKafka()
		outages = append(outages, time.Since(down).Round(100*time.Millisecond))
		t.Logf("broker serving again at %d/%d mutations, down %v", l.finished.Load(), n, outages[len(outages)-1])
	}
	<-done
	elapsed := time.Since(start)
	ok := l.succeeded()
	d, missing := awaitDelivery(s, reader, l.prefix, ok, 120*time.Second)
	fmt.Printf("fault (a) Kafka stopped twice (down %v): %d mutations from %d clients in %v (%.0f/s): %s\n",
		outages, n, outageClients, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), l.outcomeSummary())
	fmt.Printf("fault (a) delivery: %s (read back %v after the last answer)\n", d, time.Since(start.Add(elapsed)).Round(time.Millisecond))
	checkDelivery(t, d, missing)
	if got, want := len(ok), n; got != want {
		// Kafka being down must not fail a mutation while the outbox has room.
		t.Errorf("%d of %d mutations succeeded, want all: %s", got, want, l.outcomeSummary())
	}
}

// TestGatewayKill is fault test (b): the gateway is SIGKILLed in the middle
// of a run and restarted on the same outbox. Every mutation answered with
// success before or after the kill must have its event (0 lost): what was
// in the outbox at the kill is published by the restarted gateway's relay.
func TestGatewayKill(t *testing.T) {
	// Under both outbox sync policies: "interval" answers before the fsync,
	// which a process crash must not lose either.
	for i, sync := range []string{"always", "interval"} {
		t.Run("outbox-sync="+sync, func(t *testing.T) {
			gatewayKill(t, sync, int64(200+50*i))
		})
	}
}

func gatewayKill(t *testing.T, sync string, productOffset int64) {
	n := scaled(killMutations)
	s, reader, l, done := startLoad(t, "kill-"+sync, productOffset, n, killClients, "-outbox-sync="+sync)
	start := time.Now()
	l.waitProgress(0.4, n, done)
	s.KillGateway()
	killedAt := l.finished.Load()
	time.Sleep(300 * time.Millisecond) // let clients see the dead gateway
	s.StartGateway()
	t.Logf("gateway killed at %d/%d mutations and restarted", killedAt, n)
	<-done
	elapsed := time.Since(start)
	ok := l.succeeded()
	d, missing := awaitDelivery(s, reader, l.prefix, ok, 90*time.Second)
	fmt.Printf("fault (b) gateway SIGKILLed at %d/%d and restarted on its outbox: %d clients, %v: %s\n",
		killedAt, n, killClients, elapsed.Round(time.Millisecond), l.outcomeSummary())
	fmt.Printf("fault (b) delivery: %s\n", d)
	checkDelivery(t, d, missing)
	if len(ok) == 0 || len(ok) == n {
		t.Errorf("%d of %d mutations succeeded: the kill did not land mid-run", len(ok), n)
	}
}

// startLoad starts a stack, an event reader and n mutations from clients
// in the background on products of their own; done is closed when the
// mutations have all been answered.
func startLoad(t *testing.T, name string, productOffset int64, n, clients int, gatewayArgs ...string) (*harness.Stack, *harness.EventReader, *load, <-chan struct{}) {
	t.Helper()
	s := harness.Start(t, harness.Options{GatewayArgs: gatewayArgs})
	reader := harness.NewEventReader(t, harness.TopicStock)
	ids := createProducts(t, s, productBase()+productOffset, products)
	l := newLoad(t, s, name+"-"+runID, ids)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(n, clients)
	}()
	return s, reader, l, done
}

// checkDelivery fails the test when a success has no event or an event the
// wrong key.
func checkDelivery(t *testing.T, d delivery, missing []string) {
	t.Helper()
	if d.lost != 0 {
		t.Errorf("%d successful mutations have no event in Kafka (first: %v)", d.lost, missing)
	}
	if d.wrongKey != 0 {
		t.Errorf("%d events have a key other than their product id", d.wrongKey)
	}
}

// TestOutboxCap is fault test (c): with Kafka down, mutations fill a small
// outbox; at its cap they are refused with 503 before reaching service A
// (the stock level does not change), /readyz reports not ready, reads
// still work; once Kafka is back the outbox drains, every success has its
// event, and mutations are accepted again.
func TestOutboxCap(t *testing.T) {
	const maxBytes = 64 << 10
	s := harness.Start(t, harness.Options{GatewayArgs: []string{"-outbox-max-bytes", strconv.Itoa(maxBytes)}})
	reader := harness.NewEventReader(t, harness.TopicStock)
	product := createProducts(t, s, productBase()+300, 1)[0]
	path := "/stock/update"
	prefix := "cap-" + runID
	ok := map[string]string{}
	key := strconv.FormatInt(product, 10)

	s.StopKafka()
	refusedAt := 0
	for i := 1; i <= 2000 && refusedAt == 0; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		st, _, body := s.Do(t, "POST", path, fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, product, i), "X-Request-Id", id)
		switch st {
		case http.StatusOK:
			ok[id] = key
		case http.StatusServiceUnavailable:
			refusedAt = i
		default:
			t.Fatalf("mutation %d: %d %v", i, st, body)
		}
	}
	if refusedAt == 0 {
		t.Fatalf("2000 mutations into a %d-byte outbox with Kafka down, none refused", maxBytes)
	}
	before := stockLevel(t, s, product)
	if got, want := before, int64(refusedAt-1); got != want {
		t.Errorf("stock level %d after %d accepted mutations, want %d", got, refusedAt-1, want)
	}
	const refusals = 20
	for i := range refusals {
		id := fmt.Sprintf("%s-refused-%d", prefix, i)
		st, _, body := s.Do(t, "POST", path, fmt.Sprintf(`{"product_id":%d,"quantity":%d}`, product, 50_000+i), "X-Request-Id", id)
		if got, want := st, http.StatusServiceUnavailable; got != want {
			t.Fatalf("mutation at the cap: %d %v, want %d", got, body, want)
		}
		if i == 0 {
			t.Logf("refusal: %v", body)
		}
	}
	after := stockLevel(t, s, product)
	if after != before {
		t.Errorf("stock level changed from %d to %d by refused mutations: they reached service A", before, after)
	}
	if st, _, _ := s.Do(t, "GET", fmt.Sprintf("/stock/%d", product), ""); st != http.StatusOK {
		t.Errorf("read at the outbox cap: %d, want 200", st)
	}
	rst, rbody := readyz(t, s)
	if got, want := rst, http.StatusServiceUnavailable; got != want {
		t.Errorf("/readyz at the cap: %d, want %d: %v", got, want, rbody)
	}
	fmt.Printf("fault (c) Kafka down, -outbox-max-bytes %d: %d mutations accepted, then %d of %d refused with 503; stock level %d before and %d after the refusals; /readyz %d\n",
		maxBytes, refusedAt-1, refusals, refusals, before, after, rst)

	s.StartKafka()
	d, missing := awaitDelivery(s, reader, prefix, ok, 90*time.Second)
	fmt.Printf("fault (c) delivery after Kafka came back: %s\n", d)
	checkDelivery(t, d, missing)
	if d.extra != 0 {
		t.Errorf("%d events of refused mutations reached Kafka", d.extra)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _, body := s.Do(t, "POST", path, fmt.Sprintf(`{"product_id":%d,"quantity":7}`, product))
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mutation after Kafka came back: %d %v, want 200", st, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rst, rbody := readyz(t, s); rst != http.StatusOK {
		t.Errorf("/readyz after the drain: %d, want 200: %v", rst, rbody)
	}
}

// stockLevel reads a product's quantity from service A directly, bypassing
// the gateway.
func stockLevel(tb testing.TB, s *harness.Stack, product int64) int64 {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/stock/%d", s.ServiceAURL(), product), nil)
	req.Header.Set(s.ServiceHeader("service_a", 0, ""))
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("GET service_a /stock/%d: %v", product, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var item struct {
		Quantity int64 `json:"quantity"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &item) != nil {
		tb.Fatalf("GET service_a /stock/%d: %d %s", product, resp.StatusCode, raw)
	}
	return item.Quantity
}
