package auth

import (
	"context"
	"testing"
)

// BenchmarkVerify is the cost of authenticating one request: a token seen
// before (served from the cache) and a first-seen token (one RS256 or
// ES256 signature verification and the claim checks).
func BenchmarkVerify(b *testing.B) {
	k := newTestKeys(b)
	for _, bc := range []struct {
		name  string
		cache int
		ec    bool
	}{
		{"cached", 0, false},
		{"first-seen RS256", -1, false},
		{"first-seen ES256", -1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v := newTestVerifier(b, k, func(c *Config) { c.CacheSize = bc.cache })
			signer := k.signer
			if bc.ec {
				signer = keysEC
			}
			tok := sign(b, signer, claims("7", "shop:admin"))
			ctx := context.Background()
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
