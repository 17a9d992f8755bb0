package svcid

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestAssertionIsReusedForHalfItsLife(t *testing.T) {
	s, _, err := Generate("shop-gateway")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	first, err := s.Assertion("service_a", "7", "openid")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(DefaultTTL/2 - time.Second)
	if again, _ := s.Assertion("service_a", "7", "openid"); again != first {
		t.Error("a new assertion within half the lifetime")
	}
	for _, other := range [][3]string{{"service_b", "7", "openid"}, {"service_a", "8", "openid"}, {"service_a", "7", ""}} {
		if tok, _ := s.Assertion(other[0], other[1], other[2]); tok == first {
			t.Errorf("%v got the assertion of another audience, subject or scope", other)
		}
	}
	now = now.Add(2 * time.Second)
	if renewed, _ := s.Assertion("service_a", "7", "openid"); renewed == first {
		t.Error("the assertion was not renewed after half its lifetime")
	}
}

func TestNewRefusesKeysThatCannotSign(t *testing.T) {
	pubRaw, privRaw, _ := ed25519.GenerateKey(rand.Reader)
	rsaRaw, _ := rsa.GenerateKey(rand.Reader, 2048)
	mk := func(raw any, kid string, alg jwa.KeyAlgorithm) jwk.Key {
		k, err := jwk.Import(raw)
		if err != nil {
			t.Fatal(err)
		}
		if kid != "" {
			_ = k.Set(jwk.KeyIDKey, kid)
		}
		if alg != nil {
			_ = k.Set(jwk.AlgorithmKey, alg)
		}
		return k
	}
	cases := map[string]struct {
		key  jwk.Key
		ttl  time.Duration
		want string
	}{
		"public half": {mk(pubRaw, "k", jwa.EdDSA()), 0, "private"},
		"no kid":      {mk(privRaw, "", jwa.EdDSA()), 0, "kid"},
		"no alg":      {mk(privRaw, "k", nil), 0, "alg"},
		"RS256":       {mk(rsaRaw, "k", jwa.RS256()), 0, "EdDSA or ES256"},
		"lifetime 1h": {mk(privRaw, "k", jwa.EdDSA()), time.Hour, "lifetime"},
		"lifetime 1s": {mk(privRaw, "k", jwa.EdDSA()), time.Second, "lifetime"},
	}
	for name, tc := range cases {
		if _, err := New(tc.key, "", tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, tc.want)
		}
	}
	if _, err := New(mk(privRaw, "k", jwa.EdDSA()), "", 0); err != nil {
		t.Errorf("a private EdDSA key with kid: %v", err)
	}
}

func TestLoadFailsLoudly(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json"), "", 0); err == nil {
		t.Error("a missing key file was accepted")
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, "", 0); err == nil {
		t.Error("a malformed key file was accepted")
	}
}
