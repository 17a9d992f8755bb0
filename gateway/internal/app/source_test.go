package app

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The default ce_source is made once per outbox directory and kept there:
// the same after a restart, different for another deployment.
func TestDeploymentSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := deploymentSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^/shop-gateway/[0-9a-f-]{36}$`).MatchString(first) {
		t.Errorf("source %q, want /shop-gateway/<uuid>", first)
	}
	again, err := deploymentSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("after a restart: source %q, want %q", again, first)
	}
	other, err := deploymentSource(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Errorf("two outbox directories share the source %q", first)
	}
	left, _ := filepath.Glob(filepath.Join(dir, SourceIDFile+".tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestDeploymentSourceRefusesADamagedFile(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"not a UUID": "hello\n",
		"empty":      "",
		"too long":   strings.Repeat("6f1d7c58-2d0b-4c59-9a52-0b7c1e3f4a10", 3),
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SourceIDFile), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if src, err := deploymentSource(dir); err == nil {
			t.Errorf("%s: got source %q, want an error", name, src)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, SourceIDFile)); string(b) != content {
			t.Errorf("%s: the file was replaced by %q", name, b)
		}
	}
}

func TestSchemaBase(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v (the default schema base needs a host name)", err)
	}
	for addr, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"[::1]:8080":     "http://[::1]:8080",
		":8080":          "http://" + host + ":8080",
		"0.0.0.0:80":     "http://" + host + ":80",
		"gw.internal:81": "http://gw.internal:81",
	} {
		if got := defaultSchemaBase(addr); got != want {
			t.Errorf("defaultSchemaBase(%q) = %q, want %q", addr, got, want)
		}
	}
	for _, ok := range []string{"https://shop.example", "http://gw:8080/api"} {
		if err := checkSchemaBase(ok); err != nil {
			t.Errorf("checkSchemaBase(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "shop.example", "ftp://shop.example", "https://u:p@shop.example", "https://shop.example/?x=1",
		"https://shop.example/#x", "https://shop.example/", "/relative"} {
		if err := checkSchemaBase(bad); err == nil {
			t.Errorf("checkSchemaBase(%q) accepted it", bad)
		}
	}
}
