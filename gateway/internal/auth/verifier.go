package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Identity is an authenticated caller: the verified claims of its token.
type Identity struct {
	// UserID is the token's sub, a positive decimal int64.
	UserID int64
	// Scopes are the space-separated values of the token's scope claim.
	Scopes []string
	// Expiry is the token's exp.
	Expiry time.Time
	// caller is what the services are told, made once per verified token.
	caller *reqinfo.Caller
}

// HasAnyScope reports whether the identity holds one of scopes.
func (id *Identity) HasAnyScope(scopes []string) bool {
	for _, s := range scopes {
		if slices.Contains(id.Scopes, s) {
			return true
		}
	}
	return false
}

// TokenError is why a token was refused. Its message is safe to show to the
// client: it names the failed check, never a key or a library's internals.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

func tokenErr(format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// Verifier verifies access tokens against the JWKS of its Config.
type Verifier struct {
	cfg   Config
	log   *slog.Logger
	algs  map[string]jwa.SignatureAlgorithm
	keys  *keySource
	cache *tokenCache
	// verifications counts signature checks (cache misses).
	verifications atomic.Int64
}

// NewVerifier loads the JWKS (an error when it cannot be read or holds no
// usable key) and starts keeping it fresh. Close stops that.
func NewVerifier(ctx context.Context, cfg Config, log *slog.Logger) (*Verifier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth config: %w", err)
	}
	v := &Verifier{cfg: cfg, log: log, algs: map[string]jwa.SignatureAlgorithm{}, cache: newTokenCache(cfg.CacheSize, cfg.CacheBytes)}
	for _, a := range cfg.Algorithms {
		sa, ok := jwa.LookupSignatureAlgorithm(a)
		if !ok {
			return nil, fmt.Errorf("auth config: algorithm %q unknown to jwx", a)
		}
		v.algs[a] = sa
	}
	keys, err := newKeySource(ctx, &v.cfg, log, v.cache.clear)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	v.keys = keys
	return v, nil
}

// Close stops the background refresh of the keys.
func (v *Verifier) Close() { v.keys.close() }

// header is the part of a JWS protected header that is checked before the
// signature.
type header struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Crit []string `json:"crit"`
}

// Verify checks a compact JWS access token and returns its identity. A
// token seen before and not yet expired is answered from the cache. Every
// refusal is a *TokenError.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if token == "" {
		return nil, tokenErr("empty token")
	}
	if len(token) > v.cfg.MaxTokenBytes {
		return nil, tokenErr("token longer than %d bytes", v.cfg.MaxTokenBytes)
	}
	now := v.cfg.Now()
	if id, ok := v.cache.get(token, now); ok {
		return id, nil
	}
	id, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	v.cache.put(token, id, now)
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Identity, error) {
	v.verifications.Add(1)
	if strings.Count(token, ".") != 2 {
		return nil, tokenErr("not a compact JWS (header.payload.signature)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(token[:strings.IndexByte(token, '.')])
	if err != nil {
		return nil, tokenErr("header is not base64url")
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, tokenErr("header is not a JSON object")
	}
	alg, ok := v.algs[h.Alg]
	if !ok {
		// none, HS256 (which would take the public key as a secret) and
		// anything not on the allow-list.
		return nil, tokenErr("algorithm %q is not accepted", truncate(h.Alg))
	}
	if len(h.Crit) > 0 {
		return nil, tokenErr("critical header extensions are not supported")
	}
	if h.Kid == "" {
		return nil, tokenErr("no kid in the header")
	}
	key, ok := v.keys.lookup(ctx, h.Kid)
	if !ok {
		return nil, tokenErr("unknown kid %q", truncate(h.Kid))
	}
	if fam, _ := familyOf(h.Alg); fam != key.fam || (key.alg != "" && key.alg != h.Alg) {
		return nil, tokenErr("algorithm %q does not match key %q", h.Alg, truncate(h.Kid))
	}
	opts := []jwt.ParseOption{
		jwt.WithKey(alg, key.key),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(v.cfg.Leeway),
		jwt.WithRequiredClaim("exp"),
		jwt.WithRequiredClaim("sub"),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if len(v.cfg.Audience) > 0 {
		opts = append(opts, jwt.WithValidator(jwt.ValidatorFunc(v.checkAudience)))
	}
	t, err := jwt.ParseString(token, opts...)
	if err != nil {
		return nil, parseReason(err)
	}
	sub, _ := t.Subject()
	uid, err := strconv.ParseInt(sub, 10, 64)
	if err != nil || uid <= 0 || strconv.FormatInt(uid, 10) != sub {
		return nil, tokenErr("sub is not a positive decimal user id")
	}
	exp, _ := t.Expiration()
	id := &Identity{UserID: uid, Expiry: exp}
	if t.Has("scope") {
		var scope string
		if err := t.Get("scope", &scope); err != nil {
			return nil, tokenErr("scope is not a string")
		}
		id.Scopes = strings.Fields(scope)
		for _, sc := range id.Scopes {
			if !validScope(sc) {
				return nil, tokenErr("scope holds characters outside RFC 6749's scope-token")
			}
		}
	}
	id.caller = &reqinfo.Caller{UserID: id.UserID, Scopes: strings.Join(id.Scopes, " "), Expiry: id.Expiry}
	return id, nil
}

func (v *Verifier) checkAudience(_ context.Context, t jwt.Token) error {
	auds, _ := t.Audience()
	for _, a := range auds {
		if slices.Contains(v.cfg.Audience, a) {
			return nil
		}
	}
	return errWrongAudience
}

var errWrongAudience = errors.New("wrong audience")

// parseReason names the failed check of a jwx parse error without its text.
func parseReason(err error) error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return tokenErr("token is expired")
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return tokenErr("token is not valid yet (nbf)")
	case errors.Is(err, jwt.InvalidIssuerError()):
		return tokenErr("wrong issuer")
	case errors.Is(err, jwt.InvalidAudienceError()), errors.Is(err, errWrongAudience):
		return tokenErr("wrong audience")
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return tokenErr("a required claim (exp, sub) is missing")
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return tokenErr("iat is in the future")
	case errors.Is(err, jwt.ValidateError()):
		return tokenErr("claims are not valid")
	}
	return tokenErr("signature or payload is not valid")
}

// truncate bounds a client-supplied string echoed in an error.
func truncate(s string) string {
	const n = 64
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// validScope reports whether s is an RFC 6749 scope-token: printable ASCII
// without space, '"' or '\\'. Scopes are passed on in a header.
func validScope(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}
