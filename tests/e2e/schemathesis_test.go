package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shopgateway/shop/tests/harness"
)

// Bounds of the schemathesis run. The seed makes a run reproducible: the
// same seed generates the same requests. SCHEMATHESIS_SEED and
// SCHEMATHESIS_MAX_EXAMPLES override the seed and the examples per
// operation, to search further by hand.
const (
	schemathesisSeed        = 20261129
	schemathesisMaxExamples = 20
	schemathesisTimeLimit   = 150 * time.Second
)

// TestSchemathesis runs schemathesis against the real stack with every check
// and both positive and negative data: the document served at /openapi.json
// must describe what the gateway accepts and refuses, and no request may get
// a 5xx. Requests carry the stack's admin token; the exceptions and their
// reasons are in testdata/schemathesis.toml. It fails with schemathesis's
// report when there is any failure or error, and fails (never skips) when
// schemathesis is not installed (make venv installs it).
func TestSchemathesis(t *testing.T) {
	t.Parallel()
	root := harness.RepoRoot(t)
	bin := filepath.Join(root, ".venv", "bin", "schemathesis")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found (%v); install it with `make venv` (requirements-dev.txt)", bin, err)
	}
	seed := envInt(t, "SCHEMATHESIS_SEED", schemathesisSeed)
	examples := envInt(t, "SCHEMATHESIS_MAX_EXAMPLES", schemathesisMaxExamples)
	s := harness.Start(t, harness.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), schemathesisTimeLimit)
	defer cancel()
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, bin,
		"--config-file", filepath.Join(root, "tests", "e2e", "testdata", "schemathesis.toml"),
		"run", s.RESTURL()+"/openapi.json",
		"--url", s.RESTURL(),
		"--mode", "all",
		"--max-examples", examples,
		"--seed", seed,
		"--workers", "1",
		"--request-timeout", "20",
		"--no-color",
		"--report", "junit",
		"--report-dir", dir,
	)
	cmd.Dir = dir // schemathesis may leave files (.hypothesis) in its working directory
	cmd.Env = append(os.Environ(),
		"SHOP_TOKEN="+s.AdminToken(t),
		"SHOP_SCHEMATHESIS_HOOKS="+filepath.Join(root, "tests", "e2e", "testdata", "schemathesis_hooks.py"),
	)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("schemathesis (seed %s) took %v", seed, time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		t.Fatalf("schemathesis did not finish within %v; its output so far:\n%s", schemathesisTimeLimit, out)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("schemathesis reported failures or errors (exit %d, seed %s):\n%s", exit.ExitCode(), seed, out)
	case err != nil:
		t.Fatalf("running schemathesis: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("schemathesis output:\n%s", out)
	}
}

// envInt returns the environment variable name if it is set, an integer,
// else def, as a string for a command line.
func envInt(t *testing.T, name string, def int) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return strconv.Itoa(def)
	}
	if _, err := strconv.ParseInt(v, 10, 64); err != nil {
		t.Fatalf("%s=%q is not an integer", name, v)
	}
	return v
}
