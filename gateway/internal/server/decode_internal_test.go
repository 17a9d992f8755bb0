package server

import (
	"errors"
	"testing"
)

func TestProtojsonMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"proto: (line 1:42): unknown field \"x\"", "unknown field \"x\""},
		{"proto:\u00a0(line 1:42): unknown field \"x\"", "unknown field \"x\""},
		{"proto: syntax error (line 1:5): unexpected token", "unexpected token"},
		{"proto:\u00a0syntax error (line\u00a01:5): unexpected token", "unexpected token"},
		{"proto: invalid value for int32 field quantity: \"many\"", "invalid value for int32 field quantity: \"many\""},
	} {
		if got := protojsonMessage(errors.New(tc.in)); got != tc.want {
			t.Errorf("protojsonMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
