package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// family is the key type an algorithm needs.
type family string

const (
	familyRSA family = "RSA"
	familyEC  family = "EC"
	familyOKP family = "OKP"
)

// familyOf returns the key family of an allowed algorithm; false for any
// other algorithm (none, HS*, unknown).
func familyOf(alg string) (family, bool) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return familyRSA, true
	case "ES256", "ES384", "ES512":
		return familyEC, true
	case "EdDSA":
		return familyOKP, true
	}
	return "", false
}

// keyEntry is one verification key of the JWKS.
type keyEntry struct {
	key jwk.Key
	fam family
	alg string // the JWK's "alg", or "" when it does not pin one
}

// keySet is one loaded JWKS, by kid.
type keySet struct {
	byKID map[string]keyEntry
}

// keySource holds the current key set and keeps it fresh: a file is re-read
// when its size or modification time changes, a URL is fetched again every
// RefreshInterval; both are reloaded (at most once per MinRefetchInterval)
// when a token names an unknown kid, so that a rotated key is picked up
// without a restart. A failed reload keeps the previous keys.
type keySource struct {
	cfg      *Config
	log      *slog.Logger
	isURL    bool
	onChange func()

	cur atomic.Pointer[keySet]

	mu          sync.Mutex // serialises reloads
	lastRefetch time.Time  // the last reload for an unknown kid
	stamp       string     // file: size and mtime of the loaded version
	raw         string     // the loaded document, to notice a real change

	stop chan struct{}
	done chan struct{}
}

// newKeySource loads the keys once (an error if that fails) and starts the
// background refresh.
func newKeySource(ctx context.Context, cfg *Config, log *slog.Logger, onChange func()) (*keySource, error) {
	s := &keySource{
		cfg:      cfg,
		log:      log,
		isURL:    strings.HasPrefix(cfg.JWKS, "http://") || strings.HasPrefix(cfg.JWKS, "https://"),
		onChange: onChange,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := s.reload(ctx, true); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

func (s *keySource) close() {
	close(s.stop)
	<-s.done
}

func (s *keySource) loop() {
	defer close(s.done)
	every := s.cfg.FilePollInterval
	if s.isURL {
		every = s.cfg.RefreshInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), DefaultFetchTimeout)
			// A file is only re-read when it changed; a URL is fetched.
			if err := s.reload(ctx, s.isURL); err != nil {
				s.log.Warn("auth: JWKS refresh failed; keeping the previous keys", slog.String("jwks", s.cfg.JWKS), slog.Any("error", err))
			}
			cancel()
		}
	}
}

// lookup returns the key of kid. On a miss it reloads the keys, at most once
// per MinRefetchInterval, and looks again.
func (s *keySource) lookup(ctx context.Context, kid string) (keyEntry, bool) {
	if e, ok := s.cur.Load().byKID[kid]; ok {
		return e, true
	}
	s.mu.Lock()
	now := s.cfg.Now()
	recent := !s.lastRefetch.IsZero() && now.Sub(s.lastRefetch) < s.cfg.MinRefetchInterval
	if !recent {
		s.lastRefetch = now
	}
	s.mu.Unlock()
	if !recent {
		if err := s.reload(ctx, s.isURL); err != nil {
			s.log.Warn("auth: JWKS reload for an unknown kid failed", slog.String("jwks", s.cfg.JWKS), slog.Any("error", err))
		}
	}
	e, ok := s.cur.Load().byKID[kid]
	return e, ok
}

// reload reads the JWKS and swaps it in when it differs. For a file, force
// false skips the read when size and mtime are unchanged.
func (s *keySource) reload(ctx context.Context, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		data  []byte
		stamp string
		err   error
	)
	if s.isURL {
		data, err = s.fetch(ctx)
	} else {
		var fi os.FileInfo
		if fi, err = os.Stat(s.cfg.JWKS); err != nil {
			return fmt.Errorf("JWKS file: %w", err)
		}
		stamp = fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
		if !force && stamp == s.stamp {
			return nil
		}
		data, err = readBounded(s.cfg.JWKS)
	}
	if err != nil {
		return err
	}
	if s.cur.Load() != nil && string(data) == s.raw {
		s.stamp = stamp
		return nil
	}
	ks, err := parseKeySet(data)
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", s.cfg.JWKS, err)
	}
	s.stamp, s.raw = stamp, string(data)
	old := s.cur.Swap(ks)
	if old != nil && !sameKIDs(old, ks) {
		s.log.Info("auth: signing keys changed", slog.Int("keys", len(ks.byKID)))
	}
	if old != nil && s.onChange != nil {
		// A key may have been removed or replaced under the same kid:
		// tokens verified with the old keys must be verified again.
		s.onChange()
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS file: %w", err)
	}
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS file %s is larger than %d bytes", path, MaxJWKSBytes)
	}
	return data, nil
}

func (s *keySource) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.JWKS, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS fetch %s: status %s", s.cfg.JWKS, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS fetch: %w", err)
	}
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS at %s is larger than %d bytes", s.cfg.JWKS, MaxJWKSBytes)
	}
	return data, nil
}

// parseKeySet keeps the public signing keys of a JWKS that have a kid and an
// asymmetric key type. A set with none of them is an error: the gateway
// could not accept any token.
func parseKeySet(data []byte) (*keySet, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	ks := &keySet{byKID: map[string]keyEntry{}}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		var fam family
		switch k.KeyType() {
		case jwa.RSA():
			fam = familyRSA
		case jwa.EC():
			fam = familyEC
		case jwa.OKP():
			fam = familyOKP
		default:
			continue // symmetric keys never verify a token here
		}
		pub, err := jwk.PublicKeyOf(k)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		e := keyEntry{key: pub, fam: fam}
		if a, ok := k.Algorithm(); ok {
			e.alg = a.String()
		}
		if _, dup := ks.byKID[kid]; dup {
			return nil, fmt.Errorf("two keys with kid %q", kid)
		}
		ks.byKID[kid] = e
	}
	if len(ks.byKID) == 0 {
		return nil, errors.New("no usable signing key (an RSA, EC or OKP key with a kid)")
	}
	return ks, nil
}

func sameKIDs(a, b *keySet) bool {
	if len(a.byKID) != len(b.byKID) {
		return false
	}
	for k := range a.byKID {
		if _, ok := b.byKID[k]; !ok {
			return false
		}
	}
	return true
}
