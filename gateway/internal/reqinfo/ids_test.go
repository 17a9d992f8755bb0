package reqinfo

import (
	"regexp"
	"testing"

	"github.com/google/uuid"
)

func TestNewIDsFormatAndUniqueness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gen  func() string
		re   *regexp.Regexp
	}{
		{"request id is a v4 UUID", NewRequestID,
			regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)},
		{"traceparent is W3C version 00, sampled", NewTraceparent,
			regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := make(map[string]bool, 10000)
			for range 10000 {
				id := tt.gen()
				if !tt.re.MatchString(id) {
					t.Fatalf("got %q, want it to match %s", id, tt.re)
				}
				if seen[id] {
					t.Fatalf("%q generated twice", id)
				}
				seen[id] = true
			}
		})
	}
}

// BenchmarkNewRequestID compares the request id with google/uuid's v4
// (crypto/rand), which it replaced, on parallel callers.
func BenchmarkNewRequestID(b *testing.B) {
	for _, tt := range []struct {
		name string
		gen  func() string
	}{{"math/rand/v2", NewRequestID}, {"uuid.NewString", uuid.NewString}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = tt.gen()
				}
			})
		})
	}
}

func BenchmarkNewTraceparent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewTraceparent()
	}
}
