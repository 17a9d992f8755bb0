package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testdata = "../../internal/drift/testdata/"

func TestRun(t *testing.T) {
	t.Parallel()
	a, b := testdata+"service_a.json", testdata+"service_b.json"
	raw, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	drifted := filepath.Join(t.TempDir(), "a.json")
	// The response field product_name renamed in service A's StockPublic.
	if err := os.WriteFile(drifted, bytes.Replace(raw, []byte(`"product_name": {"type": "string", "title": "Product Name"}`), []byte(`"name": {"type": "string"}`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(raw, mustRead(t, drifted)) {
		t.Fatal("the edit did not apply; the test document changed shape")
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"both match", []string{"-doc", "service_a=" + a, "-doc", "service_b=" + b}, "", "service_a: its API matches the proto"},
		{"drift", []string{"-doc", "service_a=" + drifted, "-doc", "service_b=" + b}, "differences between the proto", "field product_name is read but the service does not declare it"},
		{"a service without a document", []string{"-doc", "service_a=" + a}, "no -doc for service_b", ""},
		{"an unknown service", []string{"-doc", "service_a=" + a, "-doc", "service_b=" + b, "-doc", "service_c=" + b}, "-doc service_c: no RPC is routed to it", ""},
		{"a malformed flag", []string{"-doc", "service_a"}, "want service=path", ""},
		{"a missing file", []string{"-doc", "service_a=/nonexistent.json", "-doc", "service_b=" + b}, "nonexistent.json", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(tc.args, &out)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q lacks %q", out.String(), tc.wantOut)
			}
		})
	}
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
