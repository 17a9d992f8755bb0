package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeRow is one row of the README's gateway configuration table:
// | `-flag` | `ENV` | `default` ... | meaning |
var readmeRow = regexp.MustCompile("^\\| `-([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")

// The README's flag table is the gateway's documentation of its defaults: it
// must list every flag, with its environment variable and the default the
// flag really has.
func TestREADMEListsEveryFlagWithItsDefault(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ env, def string }
	rows := map[string]row{}
	for _, line := range strings.Split(string(readme), "\n") {
		m := readmeRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		def := strings.TrimSpace(m[3])
		if def == "(none)" {
			def = ""
		} else if f := strings.Split(def, "`"); len(f) >= 3 {
			def = f[1] // the first code span: "`268435456` (256 MiB)"
		}
		rows[m[1]] = row{env: m[2], def: def}
	}
	// The defaults without the environment: unset every variable the
	// table names, for the length of the test.
	for _, r := range rows {
		t.Setenv(r.env, "")
		os.Unsetenv(r.env)
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := run(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -h: %v, want flag.ErrHelp", err)
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		r, ok := rows[f.Name]
		if !ok {
			t.Errorf("-%s is not in the README's table", f.Name)
			return
		}
		if got, want := r.def, f.DefValue; got != want && !sameDuration(got, want) {
			t.Errorf("-%s: README default %q, flag default %q", f.Name, got, want)
		}
		if !strings.Contains(f.Usage, "(env "+r.env) {
			t.Errorf("-%s: README env %s, usage %q", f.Name, r.env, f.Usage)
		}
	})
	if got, want := len(rows), n; got != want {
		t.Errorf("README table has %d rows, the gateway %d flags", got, want)
	}
}

// sameDuration reports whether a and b are the same duration written
// differently ("24h", "24h0m0s").
func sameDuration(a, b string) bool {
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}

func TestRunRefusesOutOfRangeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-gc-percent", "-1"},
		{"-gc-percent", "10001"},
		{"-log-flush-interval", "-1s"},
		{"-kafka-partitions", "0"},
		{"-rate-burst", "-1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := run(fs, args)
			if err == nil || !strings.Contains(err.Error(), args[0]) {
				t.Errorf("run %v: %v, want an error naming %s", args, err, args[0])
			}
		})
	}
}

// TestRunRefusesMalformedEnvironment: an environment value that does not
// parse stops the gateway, naming the variable, instead of leaving the
// default in force.
func TestRunRefusesMalformedEnvironment(t *testing.T) {
	for key, value := range map[string]string{
		"GATEWAY_UPSTREAM_TIMEOUT": "abc",
		"GATEWAY_RATE_LIMIT":       "fast",
		"GATEWAY_MAX_CONNS":        "1e3",
		"GATEWAY_API_DOCS":         "yes please",
	} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, value)
			fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			err := run(fs, nil)
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("%s=%q: run = %v, want an error naming %s", key, value, err, key)
			}
		})
	}
}
