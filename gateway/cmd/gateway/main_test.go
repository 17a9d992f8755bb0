package main

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the README's configuration table from the declared settings")

// The README's configuration table is made of the declared settings: one
// row each, in order, with the flag, variable, default and documentation
// the gateway has. go test ./gateway/cmd/gateway -update rewrites it.
func TestREADMEConfigTable(t *testing.T) {
	const path = "../../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	first, last := -1, -1
	for i, line := range lines {
		if strings.HasPrefix(line, "| `-") {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		t.Fatal("README has no configuration table (rows starting with | `-)")
	}
	var o options
	var want []string
	for _, st := range o.declare() {
		want = append(want, st.readmeRow())
	}
	got := lines[first : last+1]
	if *update {
		out := append(append(append([]string{}, lines[:first]...), want...), lines[last+1:]...)
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("README table row %d:\n got  %s\n want %s", i+1, g, w)
		}
	}
	if t.Failed() {
		t.Log("go test ./gateway/cmd/gateway -run TestREADMEConfigTable -update rewrites the table")
	}
}

// Every declared setting is a flag of the gateway with its variable in
// the usage, and -h shows the declared default.
func TestEverySettingIsAFlag(t *testing.T) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	decl := o.declare()
	if err := decl.load(fs, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, st := range decl {
		f := fs.Lookup(st.name)
		if f == nil {
			t.Fatalf("-%s is not a flag", st.name)
		}
		if f.DefValue != st.def || !strings.HasSuffix(f.Usage, "(env "+st.env+")") {
			t.Errorf("-%s: default %q usage %q", st.name, f.DefValue, f.Usage)
		}
		if seen[st.env] {
			t.Errorf("%s names two settings", st.env)
		}
		seen[st.env] = true
	}
}

// "off" turns off what can be turned off, in place of the negative numbers
// and empty strings that used to.
func TestOffIsSpelledOff(t *testing.T) {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var o options
	if err := o.declare().load(fs, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	err := fs.Parse([]string{"-first-byte-timeout", "off", "-rate-limit", "off", "-admin-addr", "off", "-kafka-brokers", "off", "-kafka-replication", "broker"})
	if err != nil {
		t.Fatal(err)
	}
	if o.firstByteTimeout >= 0 || o.rateLimit != 0 || o.adminAddr != "" || o.kafkaBrokers != nil || o.replication != -1 {
		t.Errorf("off: first-byte %v, rate %v, admin %q, brokers %v, replication %d", o.firstByteTimeout, o.rateLimit, o.adminAddr, o.kafkaBrokers, o.replication)
	}
	if err := fs.Parse([]string{"-kafka-replication", "3", "-rate-limit", "2.5", "-first-byte-timeout", "1s"}); err != nil {
		t.Fatal(err)
	}
	if o.replication != 3 || o.rateLimit != 2.5 || o.firstByteTimeout != time.Second {
		t.Errorf("on: replication %d, rate %v, first-byte %v", o.replication, o.rateLimit, o.firstByteTimeout)
	}
	// An environment variable set empty turns a list off only where empty
	// is a value (the brokers); elsewhere it is unset.
	fs = flag.NewFlagSet("gateway", flag.ContinueOnError)
	o = options{}
	env := map[string]string{"KAFKA_BROKERS": "", "GATEWAY_UPSTREAM_TIMEOUT": ""}
	if err := o.declare().load(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if o.kafkaBrokers != nil || o.upstreamTimeout == 0 {
		t.Errorf("empty env: brokers %v, upstream timeout %v", o.kafkaBrokers, o.upstreamTimeout)
	}
}

func TestRunRefusesOutOfRangeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-gc-percent", "-1"},
		{"-gc-percent", "10001"},
		{"-log-flush-interval", "-1s"},
		{"-kafka-partitions", "0"},
		{"-rate-burst", "-1"},
		{"-kafka-replication", "-1"},
		{"-kafka-replication", "0"},
		{"-first-byte-timeout", "-1s"},
		{"-max-body-bytes", "0"},
		{"-cart-fallback-fraction", "0"},
		{"-cart-fallback-fraction", "NaN"},
		{"-log-format", "xml"},
		{"-outbox-sync", "never"},
		{"-upstream-timeout", "0s"},
		{"-outbox-dir", ""},
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
		"GATEWAY_LIVE_BUFFER":      "0",
		"KAFKA_REPLICATION":        "-1",
		"GATEWAY_TRUSTED_PROXIES":  "10.0.0.0/33",
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

// A flag wins over its variable; the variable over the default.
func TestFlagWinsOverVariable(t *testing.T) {
	env := map[string]string{"GATEWAY_UPSTREAM_TIMEOUT": "3s", "GATEWAY_RATE_LIMIT": "5"}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var o options
	if err := o.declare().load(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"-upstream-timeout", "7s"}); err != nil {
		t.Fatal(err)
	}
	if o.upstreamTimeout != 7*time.Second || o.rateLimit != 5 {
		t.Errorf("upstream timeout %v (flag 7s over env 3s), rate limit %v (env 5)", o.upstreamTimeout, o.rateLimit)
	}
}
