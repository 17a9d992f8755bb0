package app

import (
	"slices"
	"testing"
	"time"

	"github.com/shopgateway/shop/gateway/internal/events"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// The zero Config takes the named defaults; a set field keeps its value.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"HTTPAddr", c.HTTPAddr, server.DefaultHTTPAddr},
		{"GRPCAddr", c.GRPCAddr, server.DefaultGRPCAddr},
		{"ServiceA", c.ServiceA, []string{DefaultServiceA}},
		{"ServiceB", c.ServiceB, []string{DefaultServiceB}},
		{"UpstreamTimeout", c.UpstreamTimeout, upstream.DefaultTimeout},
		{"ShutdownTimeout", c.ShutdownTimeout, server.DefaultShutdownTimeout},
		{"Events.OutboxDir", c.Events.OutboxDir, DefaultOutboxDir},
		{"Events.OutboxCommitDelay", c.Events.OutboxCommitDelay, DefaultOutboxCommitDelay},
		{"Events.OutboxSync", c.Events.OutboxSync, OutboxSyncAlways},
		{"Events.OutboxSyncInterval", c.Events.OutboxSyncInterval, DefaultOutboxSyncInterval},
		{"Events.Format", c.Events.Format, string(events.FormatJSON)},
		{"Events.Source", c.Events.Source, ""}, // made from the outbox directory at start
		{"Events.SchemaBase", c.Events.SchemaBase, defaultSchemaBase(server.DefaultHTTPAddr)},
		{"Events.Partitions", c.Events.Partitions, int32(DefaultKafkaPartitions)},
		{"Events.Replication", c.Events.Replication, int16(DefaultKafkaReplication)},
		{"Events.IdempotencyWindow", c.Events.IdempotencyWindow, events.DefaultIdempotencyWindow},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			if s, ok := tc.got.([]string); ok {
				if !slices.Equal(s, tc.want.([]string)) {
					t.Errorf("got %q, want %q", s, tc.want)
				}
				return
			}
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}

	set := Config{HTTPAddr: ":1", ShutdownTimeout: time.Second, Events: EventsConfig{OutboxCommitDelay: -1}}
	set.setDefaults()
	if set.HTTPAddr != ":1" || set.ShutdownTimeout != time.Second {
		t.Errorf("set fields changed: %q %s", set.HTTPAddr, set.ShutdownTimeout)
	}
	if got, want := set.Events.OutboxCommitDelay, time.Duration(-1); got != want {
		t.Errorf("OutboxCommitDelay -1 (commit at once) became %s", got)
	}
}
