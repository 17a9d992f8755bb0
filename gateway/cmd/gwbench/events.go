package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shopgateway/shop/gateway/internal/app"
)

const mutationJSON = `{"product_id":1,"quantity":42}`

// benchTopics keeps the benchmark's events off the shop's topics.
var benchTopics = map[string]string{
	"shop.stock.v1": "gwbench.stock.v1",
	"shop.cart.v1":  "gwbench.cart.v1",
	"shop.order.v1": "gwbench.order.v1",
}

// runEvents measures SetStockLevel (POST /stock/update) through the
// gateway with events off and on, in interleaved rounds. With events on
// every request appends its event to a real outbox (fsync, group commit)
// in a temporary directory before it is answered, and the relay publishes
// to Kafka meanwhile. It prints req/s per target and the on/off ratio, and
// the outbox depth left at the end (the relay's lag).
// commitDelay is the outbox group-commit delay of the events-on gateways.
var commitDelay time.Duration

func runEvents(ctx context.Context, upURL string, brokers []string, outboxParent string, client *http.Client, c, rounds int, d time.Duration, logs *gatewayLogs) error {
	if len(brokers) == 0 {
		return fmt.Errorf("-events needs -kafka-brokers")
	}
	dir, err := os.MkdirTemp(outboxParent, "gwbench-outbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	log, err := logs.logger(true)
	if err != nil {
		return err
	}
	// Each gateway's goroutines carry a part label of their own
	// (gateway-off, gateway-on, gateway-down, gateway-interval), so one
	// CPU profile of the run splits each one's cost by job:
	// scripts/profsplit.py bin/gwbench cpu.prof gateway-down.
	start := func(part string, ev app.EventsConfig) (string, func(), error) {
		addr, _, stop, err := startGateway(withPart(ctx, part), app.Config{Events: ev}, upURL, log)
		return addr, stop, err
	}
	offAddr, stopOff, err := start("gateway-off", app.EventsConfig{})
	if err != nil {
		return err
	}
	defer stopOff()
	// The events-on gateway's admin listener reports its outbox depth.
	onAdmin, err := freeAddr()
	if err != nil {
		return err
	}
	onAddr, _, stopOn, err := startGateway(withPart(ctx, "gateway-on"), app.Config{AdminAddr: onAdmin, Events: app.EventsConfig{
		Brokers:           brokers,
		OutboxDir:         filepath.Join(dir, "on"),
		OutboxCommitDelay: commitDelay,
		Topics:            benchTopics,
	}}, upURL, log)
	if err != nil {
		return err
	}
	defer stopOn()
	// The same with Kafka unreachable: what the gateway's own request path
	// costs (payload, envelope, intent, fsynced append), without the
	// relay's publishing and the co-located broker competing for the CPU;
	// once with the default sync policy (always) and once with interval.
	down := func(part string, sync string) (string, func(), error) {
		return start(part, app.EventsConfig{
			Brokers:           []string{"127.0.0.1:1"},
			OutboxDir:         filepath.Join(dir, part),
			OutboxCommitDelay: commitDelay,
			OutboxSync:        sync,
			Topics:            benchTopics,
		})
	}
	downAddr, stopDown, err := down("gateway-down", app.OutboxSyncAlways)
	if err != nil {
		return err
	}
	defer stopDown()
	intervalAddr, stopInterval, err := down("gateway-interval", app.OutboxSyncInterval)
	if err != nil {
		return err
	}
	defer stopInterval()

	const off = "SetStockLevel, events off"
	post := func(name, addr string) target {
		u := "http://" + addr + "/stock/update"
		base := off
		if name == off {
			base = ""
		}
		return target{name: name, base: base, do: func(ctx context.Context) error {
			return send(ctx, client, http.MethodPost, u, mutationJSON, "")
		}}
	}
	// The relay publishes the events-on gateway's backlog after its
	// measurement; it must not run into the next target's.
	on := post("SetStockLevel, events on (outbox+relay)", onAddr)
	on.settle = func() { outboxState(client, onAdmin, time.Minute) }
	targets := []target{
		post(off, offAddr),
		on,
		post("SetStockLevel, events on, Kafka down", downAddr),
		post("SetStockLevel, events on, Kafka down, -outbox-sync=interval", intervalAddr),
	}
	all := measureAll(targets, c, rounds, d)
	fmt.Printf("SetStockLevel (POST /stock/update), %d clients, %d rounds of %s, GOMAXPROCS=%d, median per target; outbox fsynced in %s, relay to %v\n\n",
		c, rounds, d, goMaxProcs(), dir, brokers)
	printTable(targets, all)
	printTotals(targets, all)
	fmt.Printf("\nevents on: %s\n", outboxState(client, onAdmin, 10*time.Second))
	return nil
}

// outboxState reads the Kafka and outbox entries of the /readyz of the
// gateway's admin listener (at admin), after giving the relay up to limit
// to drain the outbox.
func outboxState(client *http.Client, admin string, limit time.Duration) string {
	var body map[string]json.RawMessage
	deadline := time.Now().Add(limit)
	for {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return err.Error()
		}
		body = nil
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		var ob struct {
			Detail struct {
				Depth int64 `json:"depth"`
			} `json:"detail"`
		}
		_ = json.Unmarshal(body["outbox"], &ob)
		if ob.Detail.Depth == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Sprintf("kafka %s; outbox %s", body["kafka"], body["outbox"])
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}
