package drift_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/internal/drift"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// fakeFetcher answers GetEach from a list that the test may change.
type fakeFetcher struct {
	mu      sync.Mutex
	answers []upstream.Fetched
	paths   []string
}

func (f *fakeFetcher) GetEach(_ context.Context, path string) []upstream.Fetched {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paths = append(f.paths, path)
	return append([]upstream.Fetched(nil), f.answers...)
}

func (f *fakeFetcher) set(i int, a upstream.Fetched) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[i] = a
}

func docBytes(tb testing.TB, doc map[string]any) []byte {
	tb.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// readyState returns the state of instance i (0-based) of svc in the
// readiness detail.
func readyState(tb testing.TB, detail any, svc string, i int) string {
	tb.Helper()
	list := detail.(map[string]any)[svc].([]map[string]any)
	return list[i]["state"].(string)
}

func TestWatcherReportsTheInstanceThatDrifted(t *testing.T) {
	t.Parallel()
	good := docBytes(t, load(t, forward.ServiceA))
	bad := load(t, forward.ServiceA)
	rename(at(t, bad, "components", "schemas", "StockPublic", "properties"), "product_name", "name")
	a := &fakeFetcher{answers: []upstream.Fetched{
		{Instance: "http://a1", Body: good},
		{Instance: "http://a2", Body: docBytes(t, bad)},
		{Instance: "http://a3", Err: errors.New("refused")},
		{Instance: "http://a4", Body: []byte("<html>"), Status: 200},
	}}
	b := &fakeFetcher{answers: []upstream.Fetched{{Instance: "http://b1", Body: docBytes(t, load(t, forward.ServiceB))}}}
	w, err := drift.NewWatcher(drift.WatchConfig{
		Plans:         plans(t),
		Services:      map[string]drift.Fetcher{forward.ServiceA: a, forward.ServiceB: b},
		RetryInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	detail, err := w.Ready(context.Background())
	if err != nil || readyState(t, detail, forward.ServiceA, 0) != "pending" {
		t.Fatalf("before the first check: got %v, %v; want pending and no error", detail, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "the first round", func() bool {
		d, _ := w.Ready(context.Background())
		// Each service is checked on its own: wait for both.
		return readyState(t, d, forward.ServiceA, 0) != "pending" && readyState(t, d, forward.ServiceB, 0) != "pending"
	})
	detail, err = w.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "service_a instance 2:") {
		t.Errorf("got error %v; want one naming service_a instance 2", err)
	}
	if strings.Contains(err.Error(), "instance 1") || strings.Contains(err.Error(), "instance 3") || strings.Contains(err.Error(), "http://") {
		t.Errorf("error %q names more than the drifted instance, or an address", err)
	}
	for i, want := range []string{"ok", "drift", "unchecked", "unchecked"} {
		if got := readyState(t, detail, forward.ServiceA, i); got != want {
			t.Errorf("service_a instance %d: got state %q, want %q", i+1, got, want)
		}
	}
	if got := readyState(t, detail, forward.ServiceB, 0); got != "ok" {
		t.Errorf("service_b: got state %q, want ok", got)
	}
	inst2 := detail.(map[string]any)[forward.ServiceA].([]map[string]any)[1]
	if probs, _ := inst2["problems"].([]string); len(probs) == 0 || !strings.Contains(probs[0], "product_name") {
		t.Errorf("instance 2 problems: got %v, want the renamed product_name", inst2["problems"])
	}

	// The instances that could not be asked are asked again, and the fixed
	// one clears the error.
	a.set(1, upstream.Fetched{Instance: "http://a2", Body: good})
	a.set(2, upstream.Fetched{Instance: "http://a3", Body: good})
	a.set(3, upstream.Fetched{Instance: "http://a4", Body: good})
	waitFor(t, "the retry", func() bool {
		d, err := w.Ready(context.Background())
		return err == nil && readyState(t, d, forward.ServiceA, 2) == "ok"
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.paths {
		if p != drift.DocumentPath {
			t.Errorf("asked for %q, want %q", p, drift.DocumentPath)
		}
	}
}

func TestNewWatcherWantsInstancesForEveryUpstream(t *testing.T) {
	t.Parallel()
	_, err := drift.NewWatcher(drift.WatchConfig{Plans: plans(t), Services: map[string]drift.Fetcher{forward.ServiceA: &fakeFetcher{}}})
	if err == nil || !strings.Contains(err.Error(), "service_b") {
		t.Errorf("got %v, want an error naming service_b", err)
	}
}

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
