package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopgateway/shop/gateway/devkeys"
)

// TestSecureByDefault: without a JWKS the gateway refuses to start and says
// how to configure auth; -auth-disabled starts it; both at once is refused.
func TestSecureByDefault(t *testing.T) {
	t.Parallel()
	key, err := devkeys.Generate("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := devkeys.WriteJWKS(jwks, key); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		auth    AuthConfig
		wantErr string
	}{
		{"no JWKS", AuthConfig{}, "-auth-disabled"},
		{"both", AuthConfig{Disabled: true, JWKS: jwks}, "give one"},
		{"missing JWKS file", AuthConfig{JWKS: jwks + ".missing"}, "no such file"},
		{"disabled", AuthConfig{Disabled: true}, ""},
		{"JWKS", AuthConfig{JWKS: jwks, Issuer: "i", Audience: []string{"a"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := New(context.Background(), Config{Auth: tt.auth, ServiceSigningKey: serviceKey(t), Events: EventsConfig{Brokers: []string{}}}, slog.New(slog.DiscardHandler))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v, want a gateway", err)
				}
				g.Close()
				return
			}
			if err == nil {
				g.Close()
				t.Fatalf("New succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// serviceKey writes a service signing key for a test gateway and returns its path.
func serviceKey(tb testing.TB) string {
	tb.Helper()
	s, err := devkeys.Generate("EdDSA", "svc-test")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "service-signing-key.json")
	if err := s.Save(path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestNoServiceKeyNoStart: without a service signing key the gateway does
// not start (the services would refuse every call), and says how to fix it.
func TestNoServiceKeyNoStart(t *testing.T) {
	t.Parallel()
	for name, path := range map[string]string{"unset": "", "missing": filepath.Join(t.TempDir(), "none.json")} {
		_, err := New(context.Background(), Config{Auth: AuthConfig{Disabled: true}, ServiceSigningKey: path, Events: EventsConfig{Brokers: []string{}}}, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "service") {
			t.Errorf("%s: New = %v, want an error about the service signing key", name, err)
		}
	}
}
