package reqinfo

import (
	"regexp"
	"testing"
)

// ValidGrpcTimeout accepts exactly what GrpcTimeoutPattern (the pattern the
// OpenAPI document states) matches.
func TestValidGrpcTimeout(t *testing.T) {
	t.Parallel()
	pattern := regexp.MustCompile(GrpcTimeoutPattern)
	cases := []struct {
		in   string
		want bool
	}{
		{"5S", true},
		{"1n", true},
		{"0H", false},
		{"0S", false},
		{"00000000m", false},
		{"009u", false},
		{"90u", true},
		{"99999999M", true},
		{"100m", true},
		{"", false},
		{"S", false},
		{"5", false},
		{"123456789S", false},
		{"5s", false},
		{"5x", false},
		{"+5S", false},
		{"-5S", false},
		{" 5S", false},
		{"5 S", false},
		{"x5S", false},
		{"5S5S", false},
		{"٣S", false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := ValidGrpcTimeout(tc.in); got != tc.want {
				t.Errorf("ValidGrpcTimeout(%q) = %v, want %v", tc.in, got, tc.want)
			}
			if got := pattern.MatchString(tc.in); got != tc.want {
				t.Errorf("GrpcTimeoutPattern matches %q: %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzValidGrpcTimeout checks the hand-written check against the pattern on
// any input.
func FuzzValidGrpcTimeout(f *testing.F) {
	for _, s := range []string{"5S", "", "123456789S", "+1m", "0n"} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(GrpcTimeoutPattern)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidGrpcTimeout(s), pattern.MatchString(s); got != want {
			t.Errorf("ValidGrpcTimeout(%q) = %v, pattern says %v", s, got, want)
		}
	})
}
