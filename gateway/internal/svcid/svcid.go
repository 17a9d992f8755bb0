// Package svcid signs the identity assertions the gateway sends with every
// call to a service: a short-lived JWT naming the caller (the user id of the
// access token the gateway verified, with its scopes) or the gateway itself
// (svc:<issuer>), for one service as audience. The services verify it
// against the gateway's public key and trust nothing else about who is
// calling, so reaching a service's port grants nothing.
//
// An assertion lives a minute and is reused for half of that for the same
// audience, subject and scopes, so signing costs the gateway one signature
// per caller and half-minute, and a service verifies each one once.
package svcid

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

const (
	// Header is the request header that carries the assertion.
	Header = "X-Identity-Assertion"
	// ServicePrefix starts the subject of a service's own calls.
	ServicePrefix = "svc:"
	// ServiceScope is the scope of internal calls (idempotency lookups).
	ServiceScope = "shop:service"
	// DefaultIssuer is the gateway's name as an issuer: the services trust
	// it to assert users.
	DefaultIssuer = "shop-gateway"
	// DefaultTTL is an assertion's lifetime.
	DefaultTTL = time.Minute
	// maxCached bounds the cache of signed assertions (one per caller).
	maxCached = 50_000
)

type cacheKey struct{ aud, sub, scope string }

type cached struct {
	token   string
	renewAt time.Time
}

// Signer signs assertions with one private key.
type Signer struct {
	key    jwk.Key
	alg    jwa.SignatureAlgorithm
	issuer string
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cached
}

// Load reads a private JWK (EdDSA or ES256, with a kid) from path.
func Load(path, issuer string, ttl time.Duration) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service signing key: %w", err)
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("service signing key %s: %w", path, err)
	}
	return New(key, issuer, ttl)
}

// New makes a Signer of a private key; issuer defaults to DefaultIssuer and
// ttl to DefaultTTL.
func New(key jwk.Key, issuer string, ttl time.Duration) (*Signer, error) {
	if _, ok := key.KeyID(); !ok {
		return nil, fmt.Errorf("service signing key: no kid")
	}
	a, ok := key.Algorithm()
	if !ok {
		return nil, fmt.Errorf("service signing key: no alg")
	}
	var alg jwa.SignatureAlgorithm
	switch a.String() {
	case jwa.EdDSA().String():
		alg = jwa.EdDSA()
	case jwa.ES256().String():
		alg = jwa.ES256()
	default:
		return nil, fmt.Errorf("service signing key: alg %s: want EdDSA or ES256", a)
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || !private {
		return nil, fmt.Errorf("service signing key: want the private key")
	}
	ttl = cmp.Or(ttl, DefaultTTL)
	if ttl < 2*time.Second || ttl > 15*time.Minute {
		return nil, fmt.Errorf("service assertion lifetime %s: want 2s to 15m", ttl)
	}
	return &Signer{
		key: key, alg: alg, issuer: cmp.Or(issuer, DefaultIssuer), ttl: ttl,
		now: time.Now, cache: map[cacheKey]cached{},
	}, nil
}

// Self is the gateway's own subject, svc:<issuer>.
func (s *Signer) Self() string { return ServicePrefix + s.issuer }

// Assertion returns an assertion for audience naming sub with scope
// (space-separated; empty for none), signing a new one when the last one
// for the same three has lived half its time.
func (s *Signer) Assertion(audience, sub, scope string) (string, error) {
	k := cacheKey{audience, sub, scope}
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[k]
	s.mu.Unlock()
	if ok && now.Before(c.renewAt) {
		return c.token, nil
	}
	b := jwt.NewBuilder().Issuer(s.issuer).Subject(sub).Audience([]string{audience}).
		IssuedAt(now).Expiration(now.Add(s.ttl))
	if scope != "" {
		b = b.Claim("scope", scope)
	}
	t, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("identity assertion: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	out, err := jwt.Sign(t, jwt.WithKey(s.alg, s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("identity assertion: %w", err)
	}
	token := string(out)
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[k] = cached{token: token, renewAt: now.Add(s.ttl / 2)}
	s.mu.Unlock()
	return token, nil
}

// Generate makes a Signer of a new Ed25519 key (kid "ephemeral-..."), for
// tests and benchmarks, and the public half as a JWK.
func Generate(issuer string) (*Signer, jwk.Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return nil, nil, err
	}
	kid := fmt.Sprintf("ephemeral-%x", priv.Public().(ed25519.PublicKey)[:6])
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.EdDSA(), jwk.KeyUsageKey: "sig"} {
		if err := key.Set(k, v); err != nil {
			return nil, nil, err
		}
	}
	s, err := New(key, issuer, 0)
	if err != nil {
		return nil, nil, err
	}
	pub, err := jwk.PublicKeyOf(key)
	return s, pub, err
}
