package main

import (
	"testing"
	"time"
)

// -only keeps the baselines (a ratio needs its base) and the targets whose
// name contains the filter.
func TestSelectTargets(t *testing.T) {
	all := []target{
		{name: "reverse proxy, GET (baseline)"},
		{name: "gateway REST, GET (chosen)", base: "reverse proxy, GET (baseline)"},
		{name: "gateway gRPC, GetStock", base: "reverse proxy, GET (baseline)"},
	}
	if got := selectTargets(all, ""); len(got) != 3 {
		t.Errorf("no filter: %d targets, want 3", len(got))
	}
	got := selectTargets(all, "REST")
	if len(got) != 2 || got[0].name != all[0].name || got[1].name != all[1].name {
		t.Errorf("-only REST: %v, want the baseline and the REST target", got)
	}
}

// The round reported is the median by requests per second, whatever order
// the rounds came in; an even count takes the upper middle.
func TestMedian(t *testing.T) {
	rs := []result{{rps: 300, p50: 3 * time.Millisecond}, {rps: 100}, {rps: 200, p50: 2 * time.Millisecond}}
	if got := median(rs); got.rps != 200 || got.p50 != 2*time.Millisecond {
		t.Errorf("median = %+v, want the 200 req/s round", got)
	}
	if rs[0].rps != 300 {
		t.Error("median reordered its argument")
	}
	if got := median([]result{{rps: 1}, {rps: 4}, {rps: 2}, {rps: 3}}); got.rps != 3 {
		t.Errorf("median of four = %v, want 3", got.rps)
	}
}
