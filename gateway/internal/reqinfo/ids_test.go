package reqinfo

import (
	"regexp"
	"testing"
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

func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewRequestID()
	}
}

func BenchmarkNewTraceparent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewTraceparent()
	}
}
