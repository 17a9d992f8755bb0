// Package auth authenticates the callers of the gateway with JWT access
// tokens (RFC 7519, profiled by RFC 9068) verified against a JWKS, and
// authorizes each RPC by the policy declared next to it in the proto
// (option shop.annotations.v1.auth). It runs as a unary interceptor, so REST
// and gRPC calls pass the same checks.
//
// Tokens are verified with lestrrat-go/jwx: only the asymmetric algorithms
// of an allow-list are accepted, the key is chosen by the token's kid and
// must be of the algorithm's family, and iss, aud, exp and nbf are checked.
// A verified token is cached until it expires (bounded in entries and bytes), so a client that
// reuses its token pays for one signature verification.
package auth

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Defaults of Config.
const (
	// DefaultLeeway is the clock skew allowed on exp and nbf.
	DefaultLeeway = 30 * time.Second
	// DefaultRefreshInterval is how often a JWKS URL is fetched again.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultMinRefetchInterval bounds how often a token with an unknown kid
	// makes the gateway fetch (or re-read) the JWKS.
	DefaultMinRefetchInterval = 10 * time.Second
	// DefaultFilePollInterval is how often a JWKS file is checked for a
	// change.
	DefaultFilePollInterval = time.Second
	// DefaultCacheSize bounds the number of verified tokens kept.
	DefaultCacheSize = 10000
	// DefaultMaxTokenBytes bounds the length of a token; a longer one is
	// refused before any parsing.
	DefaultMaxTokenBytes = 8 << 10
	// DefaultFetchTimeout bounds one fetch of a JWKS URL.
	DefaultFetchTimeout = 10 * time.Second
	// MaxJWKSBytes bounds the size of a JWKS document.
	MaxJWKSBytes = 1 << 20
)

// DefaultAlgorithms is the allow-list of signature algorithms: asymmetric
// only, so that a public key can never serve as an HMAC secret.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config configures a Verifier.
type Config struct {
	// JWKS is where the signing keys are: a file path or an http(s) URL.
	// Required.
	JWKS string
	// Issuer is the required iss claim. Empty accepts any issuer (not
	// recommended).
	Issuer string
	// Audience lists the accepted aud values; a token must name one of them.
	// Empty accepts any audience (not recommended).
	Audience []string
	// Algorithms is the allow-list of JWS algorithms. Default
	// DefaultAlgorithms; symmetric (HS*) and "none" are always refused.
	Algorithms []string
	// Leeway is the clock skew allowed on exp and nbf. Default 30s.
	Leeway time.Duration
	// RefreshInterval is how often a JWKS URL is fetched again in the
	// background. Default 5m.
	RefreshInterval time.Duration
	// MinRefetchInterval bounds how often an unknown kid triggers a fetch
	// (URL) or a re-read (file) of the JWKS. Default 10s.
	MinRefetchInterval time.Duration
	// FilePollInterval is how often a JWKS file is checked for a change.
	// Default 1s.
	FilePollInterval time.Duration
	// CacheSize bounds the verified-token cache (entries). Default 10000;
	// negative turns the cache off.
	CacheSize int
	// CacheBytes bounds the cache's memory (tokens and identities).
	// Default 16 MiB.
	CacheBytes int
	// MaxTokenBytes bounds a token's length. Default 8 KiB.
	MaxTokenBytes int
	// HTTPClient fetches a JWKS URL. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	c.Leeway = cmp.Or(c.Leeway, DefaultLeeway)
	c.RefreshInterval = cmp.Or(c.RefreshInterval, DefaultRefreshInterval)
	c.MinRefetchInterval = cmp.Or(c.MinRefetchInterval, DefaultMinRefetchInterval)
	c.FilePollInterval = cmp.Or(c.FilePollInterval, DefaultFilePollInterval)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultCacheSize)
	c.CacheBytes = cmp.Or(c.CacheBytes, DefaultCacheBytes)
	c.MaxTokenBytes = cmp.Or(c.MaxTokenBytes, DefaultMaxTokenBytes)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultFetchTimeout}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every configuration problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.JWKS == "" {
		errs = append(errs, errors.New("no JWKS: give a file path or an http(s) URL"))
	}
	for _, a := range c.Algorithms {
		if _, ok := familyOf(a); !ok {
			errs = append(errs, fmt.Errorf("algorithm %q is not allowed: want some of %s", a, strings.Join(DefaultAlgorithms, ", ")))
		}
	}
	if c.Leeway < 0 || c.RefreshInterval < 0 || c.MinRefetchInterval < 0 || c.FilePollInterval < 0 {
		errs = append(errs, errors.New("negative duration"))
	}
	if c.MaxTokenBytes < 0 {
		errs = append(errs, errors.New("negative max token size"))
	}
	if slices.Contains(c.Audience, "") {
		errs = append(errs, errors.New("empty audience"))
	}
	return errors.Join(errs...)
}
