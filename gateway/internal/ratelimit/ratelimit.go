// Package ratelimit limits requests per client with token buckets
// (golang.org/x/time/rate) held in a bounded structure: at most MaxClients
// buckets, the least recently seen client's bucket dropped first, so that a
// flood of new clients cannot exhaust memory. It also resolves a request's
// client address, trusting X-Forwarded-For only from configured proxies.
package ratelimit

import (
	"container/list"
	"errors"
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxClients bounds the number of clients tracked at once.
const DefaultMaxClients = 100000

// shards splits the buckets so that clients rarely wait on each other's lock.
const shards = 32

// Config configures a Limiter.
type Config struct {
	// Rate is the sustained requests per second allowed per client. 0 turns
	// limiting off (New returns nil).
	Rate float64
	// Burst is how many requests a client may send at once. Default: the
	// rate rounded up, at least 1.
	Burst int
	// MaxClients bounds the buckets kept. Default 100000. A client whose
	// bucket was dropped starts again with a full one.
	MaxClients int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Burst == 0 {
		c.Burst = max(1, int(math.Ceil(c.Rate)))
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, errors.New("rate must be 0 (off) or a positive number"))
	}
	if c.Burst < 0 {
		errs = append(errs, errors.New("burst must not be negative"))
	}
	if c.MaxClients < 0 {
		errs = append(errs, errors.New("max clients must not be negative"))
	}
	return errors.Join(errs...)
}

// Limiter holds one token bucket per client.
type Limiter struct {
	cfg      Config
	perShard int
	seed     maphash.Seed
	shards   [shards]shard
}

type shard struct {
	mu  sync.Mutex
	m   map[string]*list.Element
	lru list.List // front: most recent; values are *bucket
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// New returns a Limiter, or nil when cfg.Rate is 0 (limiting off).
func New(cfg Config) (*Limiter, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		return nil, nil
	}
	l := &Limiter{cfg: cfg, perShard: max(1, cfg.MaxClients/shards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = map[string]*list.Element{}
	}
	return l, nil
}

// Decision is the outcome of one Allow.
type Decision struct {
	// OK is true when the request may go on.
	OK bool
	// RetryAfter is, when OK is false, how long until a request would be
	// allowed.
	RetryAfter time.Duration
	// Limit is the bucket size (burst) and Window the seconds it takes to
	// refill it, for the RateLimit-Policy header.
	Limit, Window int
}

// shard is the shard that holds key's bucket.
func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%shards]
}

// Allow takes one token from key's bucket.
func (l *Limiter) Allow(key string) Decision {
	s := l.shard(key)
	now := l.cfg.Now()
	s.mu.Lock()
	var b *bucket
	if e, ok := s.m[key]; ok {
		s.lru.MoveToFront(e)
		b = e.Value.(*bucket)
	} else {
		if len(s.m) >= l.perShard {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.m, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), l.cfg.Burst)}
		s.m[key] = s.lru.PushFront(b)
	}
	r := b.lim.ReserveN(now, 1)
	d := Decision{OK: true, Limit: l.cfg.Burst, Window: max(1, int(math.Ceil(float64(l.cfg.Burst)/l.cfg.Rate)))}
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		d.OK, d.RetryAfter = false, delay
	}
	s.mu.Unlock()
	return d
}

// Len counts the clients tracked, for tests.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// ParsePrefixes parses a comma-separated list of CIDRs or addresses (an
// address is a /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, pr.Masked())
	}
	return out, errors.Join(errs...)
}

// ClientIP returns the client's address: the peer address (host:port or an
// address), or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not itself a trusted proxy. Values that do not
// parse end the walk, so a client cannot inject an address through a
// proxy that appends to the header.
func ClientIP(peer string, xff []string, trusted []netip.Prefix) string {
	addr, ok := parseHost(peer)
	if !ok {
		return peer
	}
	if len(trusted) == 0 || !contains(trusted, addr) {
		return addr.String()
	}
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHost(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		addr = a
		if !contains(trusted, a) {
			break
		}
	}
	return addr.String()
}

func parseHost(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
