package relay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/internal/outbox"
	"github.com/shopgateway/shop/tests/harness"
)

// outageEnv opts in to TestIntegrationBrokerOutage outside CI; with CI set
// it always runs. It runs a private broker of its own (scripts/kafka.sh
// with its own home and ports), since stopping the shared one would break
// whatever else uses it, and takes about half a minute.
const outageEnv = "RELAY_OUTAGE_TEST"

// privateKafka runs scripts/kafka.sh for a broker of the test's own.
type privateKafka struct {
	tb   testing.TB
	env  []string
	addr string
}

func startPrivateKafka(tb testing.TB) *privateKafka {
	tb.Helper()
	// Ports from the harness's band, so that the private broker never takes
	// (or finds taken) the port of a broker someone else runs.
	ports := harness.FreePorts(tb, 2)
	port, controller := ports[0], ports[1]
	k := &privateKafka{
		tb:   tb,
		env:  append(os.Environ(), "KAFKA_HOME_DIR="+tb.TempDir(), fmt.Sprintf("KAFKA_PORT=%d", port), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", controller)),
		addr: fmt.Sprintf("127.0.0.1:%d", port),
	}
	k.run("start")
	tb.Cleanup(func() { k.run("stop") })
	return k
}

func (k *privateKafka) run(cmd string) {
	k.tb.Helper()
	script, err := filepath.Abs("../../../scripts/kafka.sh")
	if err != nil {
		k.tb.Fatal(err)
	}
	c := exec.Command("bash", script, cmd)
	c.Env = k.env
	if out, err := c.CombinedOutput(); err != nil {
		k.tb.Fatalf("kafka.sh %s: %v\n%s", cmd, err, out)
	}
}

// TestIntegrationBrokerOutage stops the broker while records stream
// through the relay and starts it again: the outage is logged once each
// way, Status follows it, and every record arrives.
func TestIntegrationBrokerOutage(t *testing.T) {
	if os.Getenv(outageEnv) == "" && os.Getenv("CI") == "" {
		t.Skipf("set %s=1 (or CI) to stop and start a private broker under the relay", outageEnv)
	}
	k := startPrivateKafka(t)
	brokers := []string{k.addr}
	topic := newTopic(t, brokers)
	ob, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ob.Close() })
	log, logs := newTestLogger()
	r, err := New(Config{Brokers: brokers, Topics: []TopicSpec{{Name: topic, Partitions: 3}}, Logger: log}, ob)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, r)

	var sawDown atomic.Bool
	outage := make(chan struct{})
	go func() {
		defer close(outage)
		time.Sleep(2 * time.Second)
		k.run("stop")
		deadline := time.Now().Add(10 * time.Second)
		for !sawDown.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		k.run("start")
	}()
	n := 0
	for appending := true; appending; n++ {
		if _, err := ob.Append(context.Background(), integrationRecord(topic, n)); err != nil {
			t.Fatal(err)
		}
		if st := r.Status(); !st.Connected && st.LastError != "" {
			sawDown.Store(true)
		}
		select {
		case <-outage:
			appending = false
		case <-time.After(time.Millisecond):
		}
	}
	if !sawDown.Load() {
		t.Error("Status never reported the outage")
	}
	waitFor(t, "the outbox to drain after the outage", func() bool { return ob.Stats().Depth == 0 })
	logs.expect(t, map[string]int{
		"kafka unavailable, relay backing off": 1,
		"kafka reachable, relay resumed":       1,
	})

	seen := map[string]bool{}
	msgs := consumeAll(t, brokers, topic, n)
	for _, m := range msgs {
		seen[string(m.Value)] = true
	}
	for i := range n {
		if v := string(integrationRecord(topic, i).Value); !seen[v] {
			t.Errorf("record %d lost", i)
		}
	}
	t.Logf("%d records through an outage, %d consumed (%d duplicates)", n, len(msgs), len(msgs)-len(seen))
}
