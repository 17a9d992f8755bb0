package devkeys_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/shopgateway/shop/gateway/devkeys"
)

// A key made by Generate, saved and loaded, signs tokens that verify
// against the JWKS WriteJWKS writes, with the claims asked for; a tampered
// or unsigned token does not verify.
func TestKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := devkeys.Generate(alg, "kid-"+alg)
			if err != nil {
				t.Fatal(err)
			}
			keyPath, jwksPath := filepath.Join(dir, "key.json"), filepath.Join(dir, "jwks.json")
			if err := s.Save(keyPath); err != nil {
				t.Fatal(err)
			}
			loaded, err := devkeys.Load(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.KeyID() != "kid-"+alg {
				t.Errorf("loaded kid %q", loaded.KeyID())
			}
			if err := devkeys.WriteJWKS(jwksPath, loaded); err != nil {
				t.Fatal(err)
			}
			set, err := jwk.ReadFile(jwksPath)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := set.Key(0)
			if !ok {
				t.Fatal("JWKS holds no key")
			}
			if private, err := jwk.IsPrivateKey(k); err != nil || private {
				t.Fatalf("JWKS holds a private key (%v)", err)
			}
			now := time.Now()
			tok, err := loaded.Token(devkeys.Claims{Subject: "7", Scope: "shop:admin", Issuer: "iss", Audience: "aud", Expiry: now.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithIssuer("iss"), jwt.WithAudience("aud"))
			if err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			if sub, _ := parsed.Subject(); sub != "7" {
				t.Errorf("sub %q", sub)
			}
			msg, err := jws.Parse([]byte(tok))
			if err != nil {
				t.Fatal(err)
			}
			if h := msg.Signatures()[0].ProtectedHeaders(); func() string { v, _ := h.KeyID(); return v }() != "kid-"+alg {
				t.Errorf("token header has no kid kid-%s", alg)
			}
			for name, bad := range map[string]string{
				"tampered": devkeys.Tamper(tok),
				"unsigned": devkeys.Unsigned("kid-"+alg, devkeys.Claims{Subject: "7", Issuer: "iss", Audience: "aud", Expiry: now.Add(time.Minute)}),
			} {
				if _, err := jwt.ParseString(bad, jwt.WithKeySet(set)); err == nil {
					t.Errorf("a %s token verifies", name)
				}
			}
		})
	}
}

func TestGenerateRefusesOtherAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"HS256", "none", "", "RS512"} {
		if _, err := devkeys.Generate(alg, "k"); err == nil || !strings.Contains(err.Error(), "algorithm") {
			t.Errorf("Generate(%q) = %v, want an error naming the algorithm", alg, err)
		}
	}
}

func TestLoadRefusesMissingKey(t *testing.T) {
	t.Parallel()
	if _, err := devkeys.Load(filepath.Join(t.TempDir(), "absent.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
