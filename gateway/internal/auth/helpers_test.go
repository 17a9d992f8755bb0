package auth

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/devkeys"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "shop-test"
)

// testKeys is a signing key, a key not in the JWKS, and the JWKS file.
type testKeys struct {
	signer, stranger *devkeys.Signer
	jwks             string
}

var (
	keysOnce sync.Once
	keysRSA  *devkeys.Signer
	keysEC   *devkeys.Signer
	keysOut  *devkeys.Signer
	keysErr  error
)

// newTestKeys writes a JWKS holding an RSA and an EC key into a temp dir.
// The keys are made once per test binary (RSA generation is slow).
func newTestKeys(tb testing.TB) *testKeys {
	tb.Helper()
	keysOnce.Do(func() {
		if keysRSA, keysErr = devkeys.Generate("RS256", "rsa-1"); keysErr != nil {
			return
		}
		if keysEC, keysErr = devkeys.Generate("ES256", "ec-1"); keysErr != nil {
			return
		}
		keysOut, keysErr = devkeys.Generate("EdDSA", "not-in-jwks")
	})
	if keysErr != nil {
		tb.Fatal(keysErr)
	}
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := devkeys.WriteJWKS(path, keysRSA, keysEC); err != nil {
		tb.Fatal(err)
	}
	return &testKeys{signer: keysRSA, stranger: keysOut, jwks: path}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestVerifier(tb testing.TB, k *testKeys, mod func(*Config)) *Verifier {
	tb.Helper()
	cfg := Config{JWKS: k.jwks, Issuer: testIssuer, Audience: []string{testAudience}}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewVerifier(context.Background(), cfg, discard())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	return v
}

// claims are good claims for user sub with scope.
func claims(sub, scope string) devkeys.Claims {
	now := time.Now()
	return devkeys.Claims{Subject: sub, Scope: scope, Issuer: testIssuer, Audience: testAudience, IssuedAt: now, Expiry: now.Add(time.Hour)}
}

func sign(tb testing.TB, s *devkeys.Signer, c devkeys.Claims) string {
	tb.Helper()
	tok, err := s.Token(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// unsigned makes an alg:none token for kid with good claims.
func unsigned(_ testing.TB, kid string, c devkeys.Claims) string { return devkeys.Unsigned(kid, c) }

// hmacWithPublicKey signs an HS256 token keyed with the JWKS key's public
// JSON, naming its kid.
func hmacWithPublicKey(tb testing.TB, s *devkeys.Signer, c devkeys.Claims) string {
	tb.Helper()
	tok, err := s.HMACWithPublicKey(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// tamper flips one character of the signature.
func tamper(tok string) string { return devkeys.Tamper(tok) }

// withoutKID signs a token with the key but no kid in its header.
func withoutKID(tb testing.TB, s *devkeys.Signer, c devkeys.Claims) string {
	tb.Helper()
	tok, err := s.WithoutKID(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}
