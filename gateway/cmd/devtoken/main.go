// Command devtoken makes the development signing key and prints access
// tokens for it. `make run` calls it with -init once, then for the demo
// tokens; `make -s token SUB=7 [SCOPE=shop:admin]` prints one token line.
//
//	devtoken -init -key .run/dev-key.json -jwks .run/jwks.json
//	devtoken -key .run/dev-key.json -sub 7 -scope shop:admin
//
// It also makes the services' identity keys (EdDSA) and prints a service
// identity header that the services accept, for calling one directly:
//
//	devtoken -init -alg EdDSA -key .run/service-signing-key.json -jwks .run/service-signing.jwks.json
//	devtoken -assertion -key .run/service-signing-key.json -aud service_a -sub 7
//
// It is for development only: the key is a local file and anyone holding it
// can mint any token the gateway accepts.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/shopgateway/shop/gateway/devkeys"
	"github.com/shopgateway/shop/gateway/internal/svcid"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	var (
		keyPath   = fl.String("key", ".run/dev-key.json", "private signing key (JWK)")
		jwksPath  = fl.String("jwks", ".run/jwks.json", "JWKS written by -init for the gateway's -auth-jwks")
		initKey   = fl.Bool("init", false, "create the key and the JWKS unless the key exists, then exit")
		sub       = fl.String("sub", "", "subject: the user id, a positive decimal integer")
		scope     = fl.String("scope", "", "scopes, space-separated (shop:admin, shop:service)")
		issuer    = fl.String("iss", devkeys.DefaultIssuer, "issuer (the gateway's -auth-issuer)")
		audience  = fl.String("aud", devkeys.DefaultAudience, "audience (the gateway's -auth-audience)")
		ttl       = fl.Duration("ttl", devkeys.DefaultTTL, "lifetime of the token")
		alg       = fl.String("alg", "RS256", "algorithm of the key -init creates: RS256, ES256 or EdDSA")
		assertion = fl.Bool("assertion", false, "print a service identity header line (X-Identity-Assertion: ...) for -aud, signed with -key as -iss (default shop-gateway), naming -sub (default the signer itself) with -scope, valid -ttl (at most 15m), then exit")
		settings  = fl.Bool("gateway-flags", false, "print the gateway's auth flags for this key (-auth-jwks, -auth-issuer, -auth-audience), one per line, then exit")
	)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *initKey {
		return initialise(*keyPath, *jwksPath, *alg)
	}
	if *assertion {
		return printAssertion(fl, *keyPath, *issuer, *audience, *sub, *scope, *ttl)
	}
	if *settings {
		_, err := fmt.Printf("-auth-jwks\n%s\n-auth-issuer\n%s\n-auth-audience\n%s\n", *jwksPath, *issuer, *audience)
		return err
	}
	if *sub == "" {
		return errors.New("-sub is required (the user id)")
	}
	s, err := devkeys.Load(*keyPath)
	if err != nil {
		return fmt.Errorf("%w (run `make run` once, or devtoken -init)", err)
	}
	now := time.Now()
	tok, err := s.Token(devkeys.Claims{
		Subject: *sub, Scope: *scope, Issuer: *issuer, Audience: *audience,
		IssuedAt: now, Expiry: now.Add(*ttl),
	})
	if err != nil {
		return err
	}
	_, err = fmt.Println(tok)
	return err
}

// initialise creates the key and its JWKS once; an existing key is kept
// (its JWKS rewritten), so tokens printed earlier stay valid.
func initialise(keyPath, jwksPath, alg string) error {
	for _, p := range []string{keyPath, jwksPath} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
	}
	s, err := devkeys.Load(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if s, err = devkeys.Generate(alg, "dev-"+time.Now().UTC().Format("20060102150405")); err != nil {
			return err
		}
		if err := s.Save(keyPath); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return devkeys.WriteJWKS(jwksPath, s)
}

// printAssertion prints one "X-Identity-Assertion: <jwt>" line. Flags not
// given on the command line take the service defaults, not the access
// token's: issuer shop-gateway, subject the signer itself, 10 minutes.
func printAssertion(fl *flag.FlagSet, keyPath, issuer, audience, sub, scope string, ttl time.Duration) error {
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["iss"] {
		issuer = svcid.DefaultIssuer
	}
	if !given["ttl"] {
		ttl = 10 * time.Minute
	}
	if !given["aud"] {
		return errors.New("-assertion needs -aud, the service: service_a or service_b")
	}
	s, err := svcid.Load(keyPath, issuer, ttl)
	if err != nil {
		return fmt.Errorf("%w (run `make run` once: it creates the key)", err)
	}
	if sub == "" {
		sub = s.Self()
	}
	tok, err := s.Assertion(audience, sub, scope)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s: %s\n", svcid.Header, tok)
	return err
}
