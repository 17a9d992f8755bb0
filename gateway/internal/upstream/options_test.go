package upstream

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	var o Options
	o.setDefaults()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"Timeout", o.Timeout, 10 * time.Second},
		{"DialTimeout", o.DialTimeout, 2 * time.Second},
		{"MaxAttempts", o.MaxAttempts, 3},
		{"EjectAfter", o.EjectAfter, 3},
		{"EjectFor", o.EjectFor, 5 * time.Second},
		{"HealthInterval", o.HealthInterval, 2 * time.Second},
		{"MaxConnsPerHost", o.MaxConnsPerHost, 512},
		{"IdleConnTimeout", o.IdleConnTimeout, 90 * time.Second},
		{"MaxResponseBytes", o.MaxResponseBytes, int64(4 << 20)},
		{"Logger set", o.Logger != nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestNewPoolConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		service string
		urls    []string
		opts    Options
		want    []string // Every fragment must be in the error.
	}{
		{"no name", "", []string{"http://a:1"}, Options{}, []string{"service name is empty"}},
		{"no URL", "svc", nil, Options{}, []string{"no instance URL"}},
		{"bad scheme", "svc", []string{"ftp://a:1"}, Options{}, []string{"scheme must be http or https"}},
		{"no scheme", "svc", []string{"a:1"}, Options{}, []string{"scheme must be http or https"}},
		{"no host", "svc", []string{"http://"}, Options{}, []string{"no host"}},
		{"credentials", "svc", []string{"http://u:secret@a:1"}, Options{}, []string{"credentials are not supported"}},
		{"query", "svc", []string{"http://a:1/?x=1"}, Options{}, []string{"query and fragment"}},
		{"unparsable", "svc", []string{"http://a b:1\x7f"}, Options{}, []string{"instance URL"}},
		{"duplicate", "svc", []string{"http://a:1/", "http://a:1"}, Options{}, []string{"listed twice"}},
		{
			"every problem at once", "", []string{"ftp://x"},
			Options{Timeout: -1, MaxAttempts: -1, EjectAfter: -2, MaxResponseBytes: -3, DialTimeout: -1, EjectFor: -1, IdleConnTimeout: -1, MaxConnsPerHost: -1},
			[]string{
				"Timeout must not be negative", "DialTimeout", "EjectFor", "IdleConnTimeout", "MaxAttempts",
				"EjectAfter", "MaxConnsPerHost", "MaxResponseBytes", "service name is empty", "scheme",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := NewPool(tt.service, tt.urls, tt.opts)
			if err == nil {
				p.Close()
				t.Fatal("got no error")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows credentials", err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestParseInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw, wantBase, wantPrefix string
	}{
		{"http://a:8001", "http://a:8001", ""},
		{"http://a:8001/", "http://a:8001", ""},
		{" https://a/api/v1/ ", "https://a/api/v1", "/api/v1"},
		{"http://a/x%20y", "http://a/x%20y", "/x%20y"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			inst, err := parseInstance(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := inst.base, tt.wantBase; got != want {
				t.Errorf("got base %q, want %q", got, want)
			}
			if got, want := inst.prefix, tt.wantPrefix; got != want {
				t.Errorf("got prefix %q, want %q", got, want)
			}
		})
	}
}
