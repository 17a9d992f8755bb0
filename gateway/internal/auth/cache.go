package auth

import (
	"hash/maphash"
	"sync"
	"time"
)

// cacheShards splits the verified-token cache so that concurrent requests
// rarely wait on one lock.
const cacheShards = 16

// DefaultCacheBytes bounds the memory of the verified-token cache (tokens
// and identities together).
const DefaultCacheBytes = 16 << 20

// cacheEntryOverhead approximates an entry's bytes besides its token.
const cacheEntryOverhead = 160

// tokenCache keeps verified tokens until they expire. An entry is found by
// a hash of the token and holds the token itself, compared in full on a
// hit, so one token can never be mistaken for another. It holds at most
// size entries and about maxBytes bytes: a full shard drops an expired
// entry among a few looked at, else a random one.
type tokenCache struct {
	perShard      int
	perShardBytes int
	seed          maphash.Seed
	shards        [cacheShards]cacheShard
}

type cacheEntry struct {
	token string
	id    *Identity
}

type cacheShard struct {
	mu    sync.Mutex
	m     map[uint64]cacheEntry
	bytes int
}

func newTokenCache(size, maxBytes int) *tokenCache {
	if size <= 0 {
		return nil
	}
	c := &tokenCache{
		perShard:      max(1, size/cacheShards),
		perShardBytes: max(1, maxBytes/cacheShards),
		seed:          maphash.MakeSeed(),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(h uint64) *cacheShard { return &c.shards[h%cacheShards] }

// get returns the identity of a cached token that has not expired at now.
func (c *tokenCache) get(token string, now time.Time) (*Identity, bool) {
	if c == nil {
		return nil, false
	}
	h := maphash.String(c.seed, token)
	s := c.shard(h)
	s.mu.Lock()
	e, ok := s.m[h]
	if ok && (e.token != token || !now.Before(e.id.Expiry)) {
		ok = false
	}
	s.mu.Unlock()
	return e.id, ok
}

func (c *tokenCache) put(token string, id *Identity, now time.Time) {
	if c == nil {
		return
	}
	h := maphash.String(c.seed, token)
	s := c.shard(h)
	size := len(token) + cacheEntryOverhead
	s.mu.Lock()
	if old, ok := s.m[h]; ok {
		s.bytes -= len(old.token) + cacheEntryOverhead
		delete(s.m, h)
	}
	for len(s.m) > 0 && (len(s.m) >= c.perShard || s.bytes+size > c.perShardBytes) {
		s.evict(now)
	}
	s.m[h] = cacheEntry{token: token, id: id}
	s.bytes += size
	s.mu.Unlock()
}

// evict drops one entry: the first expired one among a few looked at in the
// map's random order, else the first seen. The caller holds s.mu.
func (s *cacheShard) evict(now time.Time) {
	var victim uint64
	n := 0
	for h, e := range s.m {
		expired := !now.Before(e.id.Expiry)
		if n == 0 || expired {
			victim = h
		}
		n++
		if expired || n == 8 {
			break
		}
	}
	s.bytes -= len(s.m[victim].token) + cacheEntryOverhead
	delete(s.m, victim)
}

// clear drops every entry (the signing keys changed).
func (c *tokenCache) clear() {
	if c == nil {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.bytes = 0
		s.mu.Unlock()
	}
}

// len counts the entries, for tests.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
