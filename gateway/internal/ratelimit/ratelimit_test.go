package ratelimit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestNewOffAndInvalid(t *testing.T) {
	if l, err := New(Config{}); l != nil || err != nil {
		t.Errorf("rate 0: New = %v, %v; want nil, nil (off)", l, err)
	}
	for _, c := range []Config{{Rate: -1}, {Rate: 1, Burst: -1}, {Rate: 1, MaxClients: -1}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", c)
		}
	}
}

func TestBucketPerClient(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l, err := New(Config{Rate: 2, Burst: 3, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if d := l.Allow("alice"); !d.OK {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	d := l.Allow("alice")
	if d.OK || d.RetryAfter != 500*time.Millisecond {
		t.Errorf("4th request: %+v, want refused with RetryAfter 500ms (rate 2/s)", d)
	}
	if d.Limit != 3 || d.Window != 2 {
		t.Errorf("policy: limit %d window %d, want 3 and 2 (3 tokens at 2/s)", d.Limit, d.Window)
	}
	if !l.Allow("bob").OK {
		t.Error("another client waited for alice's bucket")
	}
	// A refused request takes no token: after half a second one is back.
	clk.t = clk.t.Add(500 * time.Millisecond)
	if !l.Allow("alice").OK {
		t.Error("alice refused after the bucket refilled one token")
	}
	if l.Allow("alice").OK {
		t.Error("alice allowed a second request on one refilled token")
	}
}

// TestLeastRecentClientIsDropped: at the cap the least recently seen
// client's bucket goes, never the newest or one just used.
func TestLeastRecentClientIsDropped(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	// One shard's worth: shards*2 clients in total, 2 per shard.
	l, err := New(Config{Rate: 1, Burst: 1, MaxClients: 2 * shards, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	// Find three keys of one shard.
	var keys []string
	want := l.shard("k0")
	for i := 0; len(keys) < 3; i++ {
		if k := fmt.Sprint("k", i); l.shard(k) == want {
			keys = append(keys, k)
		}
	}
	oldest, recent, newcomer := keys[0], keys[1], keys[2]
	l.Allow(oldest) // empties oldest's bucket
	l.Allow(recent) // empties recent's bucket
	l.Allow(oldest) // oldest is now the most recently seen (refused)
	l.Allow(newcomer)
	// oldest was seen recently: kept, its bucket still empty. recent was the
	// least recently seen: dropped, so it starts with a full bucket.
	if l.Allow(oldest).OK {
		t.Error("a recently seen client lost its bucket (got a full one back)")
	}
	if !l.Allow(recent).OK {
		t.Error("the least recently seen client kept its bucket: another one was dropped instead")
	}
	if got := len(want.m); got != 2 {
		t.Errorf("the shard holds %d buckets, want its cap of 2", got)
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxies: the peer", "203.0.113.5:4000", []string{"1.2.3.4"}, nil, "203.0.113.5"},
		{"untrusted peer: its header is ignored", "203.0.113.5:4000", []string{"1.2.3.4"}, trusted, "203.0.113.5"},
		{"trusted proxy: the client before it", "10.1.2.3:80", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"a chain of trusted proxies", "10.1.2.3:80", []string{"198.51.100.7, 10.9.9.9", "192.168.1.1"}, trusted, "198.51.100.7"},
		{"a client's forged hop before the real one is not believed", "10.1.2.3:80", []string{"6.6.6.6, 198.51.100.7"}, trusted, "198.51.100.7"},
		{"garbage ends the walk", "10.1.2.3:80", []string{"198.51.100.7, not-an-ip, 10.9.9.9"}, trusted, "10.9.9.9"},
		{"IPv4-mapped IPv6 peer", "[::ffff:203.0.113.5]:4000", nil, nil, "203.0.113.5"},
		{"peer without port", "203.0.113.5", nil, trusted, "203.0.113.5"},
	}
	for _, c := range cases {
		if got := ClientIP(c.peer, c.xff, c.trusted); got != c.want {
			t.Errorf("%s: ClientIP(%q, %q) = %q, want %q", c.name, c.peer, c.xff, got, c.want)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/33,nope"); err == nil {
		t.Error("ParsePrefixes accepted garbage")
	}
}
