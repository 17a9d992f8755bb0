// Package devkeys makes development signing keys and access tokens for the
// gateway: the key `make run` creates under .run/, the tokens `make token`
// prints, and the real tokens the test harness hands out. It is never linked
// into the gateway binary, which only verifies tokens.
package devkeys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Defaults of the development setup: the issuer and audience `make run`
// configures the gateway with and its tokens carry.
const (
	DefaultIssuer   = "https://shop.local/dev-issuer"
	DefaultAudience = "shop-gateway"
	DefaultTTL      = 24 * time.Hour
)

// Signer signs tokens with one private key.
type Signer struct {
	key jwk.Key // private
	alg jwa.SignatureAlgorithm
}

// Generate makes a new key of alg (RS256, ES256 or EdDSA) with the given kid.
func Generate(alg, kid string) (*Signer, error) {
	var raw any
	var err error
	switch alg {
	case "RS256":
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("devkeys: algorithm %q: want RS256, ES256 or EdDSA", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("devkeys: generate: %w", err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		return nil, fmt.Errorf("devkeys: %w", err)
	}
	sa, _ := jwa.LookupSignatureAlgorithm(alg)
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, err
	}
	if err := k.Set(jwk.AlgorithmKey, sa); err != nil {
		return nil, err
	}
	if err := k.Set(jwk.KeyUsageKey, "sig"); err != nil {
		return nil, err
	}
	return &Signer{key: k, alg: sa}, nil
}

// Load reads a private key saved by Save.
func Load(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devkeys: %w", err)
	}
	k, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("devkeys: %s: %w", path, err)
	}
	a, ok := k.Algorithm()
	if !ok {
		return nil, fmt.Errorf("devkeys: %s: the key has no alg", path)
	}
	sa, ok := jwa.LookupSignatureAlgorithm(a.String())
	if !ok {
		return nil, fmt.Errorf("devkeys: %s: alg %q is not a signature algorithm", path, a)
	}
	return &Signer{key: k, alg: sa}, nil
}

// Save writes the private key as a JWK, readable by its owner only.
func (s *Signer) Save(path string) error {
	data, err := json.Marshal(s.key)
	if err != nil {
		return fmt.Errorf("devkeys: %w", err)
	}
	return writeFile(path, data, 0o600)
}

// KeyID is the key's kid.
func (s *Signer) KeyID() string {
	kid, _ := s.key.KeyID()
	return kid
}

// Public returns the public half of the key as a JWK.
func (s *Signer) Public() (jwk.Key, error) { return jwk.PublicKeyOf(s.key) }

// WriteJWKS writes a JWKS holding the public keys of signers (atomically:
// a reader never sees half a file).
func WriteJWKS(path string, signers ...*Signer) error {
	set := jwk.NewSet()
	for _, s := range signers {
		pub, err := s.Public()
		if err != nil {
			return fmt.Errorf("devkeys: %w", err)
		}
		if err := set.AddKey(pub); err != nil {
			return fmt.Errorf("devkeys: %w", err)
		}
	}
	data, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return fmt.Errorf("devkeys: %w", err)
	}
	return writeFile(path, data, 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("devkeys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("devkeys: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("devkeys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("devkeys: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("devkeys: %w", err)
	}
	return nil
}

// Claims are the claims of a token. Zero times are left out, except Expiry,
// which defaults to an hour after IssuedAt.
type Claims struct {
	Subject   string
	Scope     string // space-separated; empty leaves the claim out
	Issuer    string
	Audience  string
	IssuedAt  time.Time // default now
	NotBefore time.Time
	Expiry    time.Time
}

// Token signs an RFC 9068 access token (typ at+jwt) with the key.
func (s *Signer) Token(c Claims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.Expiry.IsZero() {
		c.Expiry = c.IssuedAt.Add(time.Hour)
	}
	b := jwt.NewBuilder().Subject(c.Subject).IssuedAt(c.IssuedAt).Expiration(c.Expiry)
	if c.Issuer != "" {
		b = b.Issuer(c.Issuer)
	}
	if c.Audience != "" {
		b = b.Audience([]string{c.Audience})
	}
	if !c.NotBefore.IsZero() {
		b = b.NotBefore(c.NotBefore)
	}
	if c.Scope != "" {
		b = b.Claim("scope", c.Scope)
	}
	t, err := b.Build()
	if err != nil {
		return "", fmt.Errorf("devkeys: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", err
	}
	out, err := jwt.Sign(t, jwt.WithKey(s.alg, s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("devkeys: sign: %w", err)
	}
	return string(out), nil
}
