package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/devkeys"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	v := newTestVerifier(t, k, nil)
	now := time.Now()
	with := func(f func(*devkeys.Claims)) devkeys.Claims {
		c := claims("7", "shop:admin shop:service")
		f(&c)
		return c
	}
	good := sign(t, k.signer, claims("7", "shop:admin shop:service"))
	tests := []struct {
		name   string
		token  string
		reason string // "" = accepted
	}{
		{"good RSA", good, ""},
		{"good EC", sign(t, keysEC, claims("8", "")), ""},
		{"within leeway after exp", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Expiry = now.Add(-10 * time.Second) })), ""},
		{"empty", "", "empty token"},
		{"garbage", "not-a-token", "not a compact JWS"},
		{"two parts", "a.b", "not a compact JWS"},
		{"JWE shape", "a.b.c.d.e", "not a compact JWS"},
		{"header not base64", "!!.e30.sig", "header is not base64url"},
		{"header not JSON", "bm90anNvbg.e30.sig", "header is not a JSON object"},
		{"bad signature", tamper(good), "signature or payload"},
		// The whole reason: "does not match key" would also contain the
		// algorithm's name, and must not pass for the allow-list's refusal.
		{"alg none", unsigned(t, k.signer.KeyID(), claims("7", "shop:admin")), `algorithm "none" is not accepted`},
		{"HMAC keyed with the public key", hmacWithPublicKey(t, k.signer, claims("7", "shop:admin")), `algorithm "HS256" is not accepted`},
		{"no kid", withoutKID(t, k.signer, claims("7", "shop:admin")), "no kid in the header"},
		{"expired", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Expiry = now.Add(-time.Hour) })), "expired"},
		{"not yet valid", sign(t, k.signer, with(func(c *devkeys.Claims) { c.NotBefore = now.Add(time.Hour) })), "not valid yet"},
		{"wrong issuer", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Issuer = "https://evil.test" })), "wrong issuer"},
		{"no issuer", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Issuer = "" })), "wrong issuer"},
		{"wrong audience", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Audience = "other" })), "wrong audience"},
		{"no audience", sign(t, k.signer, with(func(c *devkeys.Claims) { c.Audience = "" })), "wrong audience"},
		{"unknown kid", sign(t, k.stranger, claims("7", "")), "unknown kid"},
		{"sub not a number", sign(t, k.signer, claims("alice", "")), "sub is not"},
		{"sub zero", sign(t, k.signer, claims("0", "")), "sub is not"},
		{"sub negative", sign(t, k.signer, claims("-7", "")), "sub is not"},
		{"sub leading zero", sign(t, k.signer, claims("07", "")), "sub is not"},
		{"sub overflow", sign(t, k.signer, claims("9223372036854775808", "")), "sub is not"},
		{"empty sub", sign(t, k.signer, claims("", "")), "sub is not"},
		{"scope with a quote", sign(t, k.signer, claims("7", `shop:admin "x`)), "scope holds"},
		{"too long", strings.Repeat("a", DefaultMaxTokenBytes+1), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v, want accepted", err)
				}
				if id.UserID <= 0 {
					t.Errorf("UserID = %d, want positive", id.UserID)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Verify = %v, %v; want a *TokenError containing %q", id, err, tt.reason)
			}
			if got := te.Error(); !strings.Contains(got, tt.reason) {
				t.Errorf("error %q, want it to contain %q", got, tt.reason)
			}
		})
	}
}

// TestAlgorithmAllowList: an algorithm left off the allow-list is refused
// even with a good signature.
func TestAlgorithmAllowList(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	v := newTestVerifier(t, k, func(c *Config) { c.Algorithms = []string{"ES256"} })
	if _, err := v.Verify(context.Background(), sign(t, keysEC, claims("7", ""))); err != nil {
		t.Errorf("ES256 token: %v, want accepted", err)
	}
	_, err := v.Verify(context.Background(), sign(t, k.signer, claims("7", "")))
	if err == nil || !strings.Contains(err.Error(), `algorithm "RS256" is not accepted`) {
		t.Errorf("RS256 token with only ES256 allowed: %v, want refused as not accepted", err)
	}
}

func TestVerifyIdentity(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	v := newTestVerifier(t, k, nil)
	id, err := v.Verify(context.Background(), sign(t, k.signer, claims("9223372036854775807", "shop:admin  shop:service")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := id.UserID, int64(9223372036854775807); got != want {
		t.Errorf("UserID = %d, want %d", got, want)
	}
	if got, want := strings.Join(id.Scopes, ","), "shop:admin,shop:service"; got != want {
		t.Errorf("Scopes = %s, want %s", got, want)
	}
	if !id.HasAnyScope([]string{"x", "shop:service"}) || id.HasAnyScope([]string{"shop"}) {
		t.Errorf("HasAnyScope wrong for %v", id.Scopes)
	}
}

func TestVerifierRefusesToStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := dir + "/empty.json"
	if err := os.WriteFile(empty, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no JWKS":          {},
		"missing file":     {JWKS: dir + "/nope.json"},
		"only an HMAC key": {JWKS: empty},
		"HS256 allowed":    {JWKS: empty, Algorithms: []string{"HS256"}},
		"none allowed":     {JWKS: empty, Algorithms: []string{"none"}},
	} {
		t.Run(name, func(t *testing.T) {
			if v, err := NewVerifier(context.Background(), cfg, discard()); err == nil {
				v.Close()
				t.Fatalf("NewVerifier(%+v) succeeded, want an error", cfg)
			}
		})
	}
}

func TestVerifyCache(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	v := newTestVerifier(t, k, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	c := claims("7", "")
	c.Expiry = now.Add(time.Minute)
	tok := sign(t, k.signer, c)
	for range 3 {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := v.verifications.Load(), int64(1); got != want {
		t.Fatalf("%d signature verifications for one token used 3 times, want %d", got, want)
	}
	// Past exp (and the leeway) a cached token is verified again, and fails.
	clock.Store(now.Add(2 * time.Minute).UnixNano())
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("an expired cached token was accepted")
	}
}

func TestTokenCacheBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for name, c := range map[string]*tokenCache{
		"by entries": newTokenCache(64, 1<<30),
		"by bytes":   newTokenCache(1<<20, 64*(100+cacheEntryOverhead)),
	} {
		t.Run(name, func(t *testing.T) {
			for i := range 10000 {
				tok := fmt.Sprintf("%0100d", i)
				c.put(tok, &Identity{UserID: 1, Expiry: now.Add(time.Hour)}, now)
				if _, ok := c.get(tok, now); !ok {
					t.Fatalf("token %d not found right after put", i)
				}
			}
			if got, max := c.len(), 64; got > max {
				t.Errorf("cache holds %d entries, want at most %d", got, max)
			}
			if _, ok := c.get(fmt.Sprintf("%0101d", 9999), now); ok {
				t.Error("a token that was never put was found")
			}
		})
	}
}

// TestKeyRotationFile: a key added to the JWKS file is accepted without a
// restart, and a removed key's tokens are refused once the file is re-read,
// even when they were cached.
func TestKeyRotationFile(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	v := newTestVerifier(t, k, func(c *Config) {
		c.FilePollInterval = 20 * time.Millisecond
		c.MinRefetchInterval = time.Millisecond
	})
	oldTok := sign(t, k.signer, claims("7", ""))
	if _, err := v.Verify(context.Background(), oldTok); err != nil {
		t.Fatal(err)
	}
	newKey, err := devkeys.Generate("ES256", "rotated")
	if err != nil {
		t.Fatal(err)
	}
	newTok := sign(t, newKey, claims("7", ""))
	if _, err := v.Verify(context.Background(), newTok); err == nil {
		t.Fatal("a token of a key not yet in the JWKS was accepted")
	}
	if err := devkeys.WriteJWKS(k.jwks, k.signer, newKey); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error { _, err := v.Verify(context.Background(), newTok); return err })
	if err := devkeys.WriteJWKS(k.jwks, newKey); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if _, err := v.Verify(context.Background(), oldTok); err == nil {
			return errors.New("the removed key's token is still accepted")
		}
		return nil
	})
	if _, err := v.Verify(context.Background(), newTok); err != nil {
		t.Fatalf("the remaining key's token: %v", err)
	}
}

// TestKeyRotationURL: a JWKS URL is fetched again when a token names an
// unknown kid, at most once per MinRefetchInterval.
func TestKeyRotationURL(t *testing.T) {
	t.Parallel()
	k := newTestKeys(t)
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.ServeFile(w, r, k.jwks)
	}))
	t.Cleanup(srv.Close)
	v := newTestVerifier(t, &testKeys{jwks: srv.URL}, func(c *Config) { c.MinRefetchInterval = time.Hour })
	if _, err := v.Verify(context.Background(), sign(t, k.signer, claims("7", ""))); err != nil {
		t.Fatal(err)
	}
	// The first unknown kid triggers a fetch; the rest within the interval do not.
	for range 5 {
		if _, err := v.Verify(context.Background(), sign(t, k.stranger, claims("7", ""))); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if got, want := fetches.Load(), int64(2); got != want {
		t.Errorf("JWKS fetched %d times, want %d (start + one refetch)", got, want)
	}

	v2 := newTestVerifier(t, &testKeys{jwks: srv.URL}, func(c *Config) { c.MinRefetchInterval = time.Millisecond })
	if err := devkeys.WriteJWKS(k.jwks, k.signer, k.stranger); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := v2.Verify(context.Background(), sign(t, k.stranger, claims("7", ""))); err != nil {
		t.Errorf("a key added to the JWKS URL: %v, want accepted after the refetch", err)
	}
}

func waitFor(tb testing.TB, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
