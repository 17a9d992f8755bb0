package harness_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shopgateway/shop/tests/harness"
)

// TestStack starts a stack, checks that every process answers, restarts
// service_b and the gateway, and checks that cleanup frees the ports.
func TestStack(t *testing.T) {
	var ports []string
	t.Run("lifecycle", func(t *testing.T) {
		s := harness.Start(t, harness.Options{})
		ports = []string{hostPort(t, s.RESTURL()), s.GRPCAddr(), hostPort(t, s.ServiceAURL()), hostPort(t, s.ServiceBURL())}

		for _, tc := range []struct {
			name, url string
		}{
			{"gateway", s.RESTURL() + "/readyz"},
			{"service_a", s.ServiceAURL() + "/readyz"},
			{"service_b", s.ServiceBURL() + "/readyz"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got, want := get(t, tc.url), http.StatusOK; got != want {
					t.Errorf("GET %s = %d, want %d", tc.url, got, want)
				}
			})
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := grpc_health_v1.NewHealthClient(s.GRPCConn(t)).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("gRPC health check: %v", err)
		}
		if got, want := resp.GetStatus(), grpc_health_v1.HealthCheckResponse_SERVING; got != want {
			t.Errorf("gRPC health = %v, want %v", got, want)
		}

		s.StopServiceB()
		if _, err := http.Get(s.ServiceBURL() + "/healthz"); err == nil {
			t.Errorf("GET service_b /healthz after StopServiceB succeeded, want a refused connection")
		}
		s.StartServiceB()

		s.KillGateway()
		s.StartGateway()
		status, _, body := s.Do(t, "GET", "/stock", "")
		if got, want := status, http.StatusOK; got != want {
			t.Errorf("GET /stock after a gateway restart = %d %v, want %d", got, body, want)
		}
	})
	for _, addr := range ports {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("port %s still taken after cleanup: %v", addr, err)
			continue
		}
		l.Close()
	}
}

// TestEventReader produces records to a fresh topic and reads them back,
// skipping what was there before the reader was created.
func TestEventReader(t *testing.T) {
	topic := fmt.Sprintf("harness.test.%d", time.Now().UnixNano())
	harness.HoldKafka(t)
	produce(t, topic, "before", nil)
	t.Cleanup(func() { deleteTopic(t, topic) })
	r := harness.NewEventReader(t, topic)
	for i := range 3 {
		produce(t, topic, fmt.Sprint(i), map[string]string{"ce_type": "test.Event", "x-request-id": fmt.Sprint("req-", i)})
	}
	evs := r.WaitFor(t, 3, 20*time.Second)
	if got, want := len(evs), 3; got != want {
		t.Fatalf("read %d events, want %d: %v", got, want, evs)
	}
	for i, e := range evs {
		if got, want := e.Key, fmt.Sprint(i); got != want {
			t.Errorf("event %d key = %q, want %q", i, got, want)
		}
		if got, want := e.Type(), "test.Event"; got != want {
			t.Errorf("event %d type = %q, want %q", i, got, want)
		}
		if got, want := e.Headers["x-request-id"], fmt.Sprint("req-", i); got != want {
			t.Errorf("event %d x-request-id = %q, want %q", i, got, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if evs, err := r.Collect(ctx, func(evs []harness.Event) bool { return len(evs) > 3 }); err == nil {
		t.Errorf("Collect for a 4th event returned %v, want a deadline error", evs)
	}
}

// TestEventReaderNewTopic reads a topic that did not exist when the reader
// was created from its beginning, and does not create it itself.
func TestEventReaderNewTopic(t *testing.T) {
	topic := fmt.Sprintf("harness.test.new.%d", time.Now().UnixNano())
	harness.HoldKafka(t)
	r := harness.NewEventReader(t, topic)
	t.Cleanup(func() { deleteTopic(t, topic) })
	time.Sleep(500 * time.Millisecond) // let the reader poll the missing topic
	produce(t, topic, "first", nil)
	evs := r.WaitFor(t, 1, 20*time.Second)
	if got, want := evs[0].Key, "first"; got != want {
		t.Errorf("first event key = %q, want %q", got, want)
	}
}

func deleteTopic(tb testing.TB, topic string) {
	tb.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_3_1_0
	admin, err := sarama.NewClusterAdmin(harness.Brokers(), cfg)
	if err != nil {
		tb.Errorf("cluster admin: %v", err)
		return
	}
	defer admin.Close()
	if err := admin.DeleteTopic(topic); err != nil {
		tb.Errorf("delete topic %s: %v", topic, err)
	}
}

func produce(tb testing.TB, topic, key string, headers map[string]string) {
	tb.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_3_1_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	// A broker just restarted by another test may not have created the
	// new topic's partition yet: retry for a while, as a client would.
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 500 * time.Millisecond
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 500 * time.Millisecond
	p, err := sarama.NewSyncProducer(harness.Brokers(), cfg)
	if err != nil {
		tb.Fatalf("producer: %v", err)
	}
	defer p.Close()
	msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.StringEncoder(`{"k":"` + key + `"}`)}
	for k, v := range headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	if _, _, err := p.SendMessage(msg); err != nil {
		tb.Fatalf("produce to %s: %v", topic, err)
	}
}

func get(tb testing.TB, url string) int {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func hostPort(tb testing.TB, url string) string {
	tb.Helper()
	const prefix = "http://"
	if len(url) <= len(prefix) {
		tb.Fatalf("bad url %q", url)
	}
	return url[len(prefix):]
}
