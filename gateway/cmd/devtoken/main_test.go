package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/shopgateway/shop/gateway/devkeys"
	"github.com/shopgateway/shop/gateway/internal/svcid"
)

// stdout runs f with os.Stdout captured and returns what it printed.
func stdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	return string(out), ferr
}

// -init makes the key once (a second -init keeps it, so earlier tokens stay
// valid) and the JWKS; a token printed for -sub verifies against that JWKS
// with the development issuer and audience; an assertion line is printed
// for a service.
func TestInitThenToken(t *testing.T) {
	dir := t.TempDir()
	key, jwks := filepath.Join(dir, "k", "key.json"), filepath.Join(dir, "k", "jwks.json")
	if err := run([]string{"-init", "-key", key, "-jwks", jwks, "-alg", "EdDSA"}); err != nil {
		t.Fatal(err)
	}
	first, err := devkeys.Load(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-init", "-key", key, "-jwks", jwks, "-alg", "RS256"}); err != nil {
		t.Fatal(err)
	}
	if again, _ := devkeys.Load(key); again == nil || again.KeyID() != first.KeyID() {
		t.Fatalf("a second -init replaced the key")
	}
	out, err := stdout(t, func() error { return run([]string{"-key", key, "-sub", "7", "-scope", "shop:admin"}) })
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.ReadFile(jwks)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseString(strings.TrimSpace(out), jwt.WithKeySet(set), jwt.WithIssuer(devkeys.DefaultIssuer), jwt.WithAudience(devkeys.DefaultAudience))
	if err != nil {
		t.Fatalf("printed token %q does not verify: %v", out, err)
	}
	if sub, _ := tok.Subject(); sub != "7" {
		t.Errorf("sub %q, want 7", sub)
	}
	out, err = stdout(t, func() error { return run([]string{"-key", key, "-assertion", "-aud", "service_a", "-sub", "7"}) })
	if err != nil || !strings.HasPrefix(out, svcid.Header+": ey") {
		t.Errorf("-assertion printed %q (%v), want a %s line", out, err, svcid.Header)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"no sub":            {"-key", filepath.Join(dir, "absent.json")},
		"no key":            {"-key", filepath.Join(dir, "absent.json"), "-sub", "7"},
		"assertion, no aud": {"-key", filepath.Join(dir, "absent.json"), "-assertion"},
		"unknown algorithm": {"-init", "-key", filepath.Join(dir, "k.json"), "-jwks", filepath.Join(dir, "j.json"), "-alg", "HS256"},
		"unknown flag":      {"-nope"},
	} {
		if _, err := stdout(t, func() error { return run(args) }); err == nil {
			t.Errorf("%s: run %v succeeded", name, args)
		}
	}
}
