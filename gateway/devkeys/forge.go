package devkeys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// The tokens below are attacks a verifier must refuse; tests of the gateway
// use them.

// Unsigned returns an "alg":"none" token naming kid, with claims c.
func Unsigned(kid string, c Claims) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "kid": kid, "typ": "at+jwt"})
	p, _ := json.Marshal(map[string]any{"sub": c.Subject, "iss": c.Issuer, "aud": c.Audience, "exp": c.Expiry.Unix(), "scope": c.Scope})
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

// HMACWithPublicKey returns an HS256 token naming s's kid whose secret is
// s's public JWK: the algorithm-confusion attack on verifiers that take the
// algorithm from the token.
func (s *Signer) HMACWithPublicKey(c Claims) (string, error) {
	pub, err := s.Public()
	if err != nil {
		return "", err
	}
	secret, err := json.Marshal(pub)
	if err != nil {
		return "", err
	}
	b := jwt.NewBuilder().Subject(c.Subject).Issuer(c.Issuer).Expiration(c.Expiry)
	if c.Audience != "" {
		b = b.Audience([]string{c.Audience})
	}
	if c.Scope != "" {
		b = b.Claim("scope", c.Scope)
	}
	t, err := b.Build()
	if err != nil {
		return "", err
	}
	out, err := jwt.Sign(t, jwt.WithKey(jwa.HS256(), secret))
	if err != nil {
		return "", fmt.Errorf("devkeys: %w", err)
	}
	parts := strings.Split(string(out), ".")
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": s.KeyID(), "typ": "at+jwt"})
	parts[0] = base64.RawURLEncoding.EncodeToString(h)
	return strings.Join(parts, "."), nil
}

// Tamper returns token with one character of its signature changed.
func Tamper(token string) string {
	b := []byte(token)
	i := len(b) - 5
	if i < 0 {
		return token + "x"
	}
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// WithoutKID signs c like Token with the same key, but with no kid in the
// header: a verifier must refuse it rather than try its keys in turn.
func (s *Signer) WithoutKID(c Claims) (string, error) {
	k, err := s.key.Clone()
	if err != nil {
		return "", err
	}
	if err := k.Remove(jwk.KeyIDKey); err != nil {
		return "", err
	}
	return (&Signer{key: k, alg: s.alg}).Token(c)
}
