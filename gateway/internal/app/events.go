package app

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/shopgateway/shop/gateway/internal/server"
)

// EventsConfig configures the Kafka events of mutations.
type EventsConfig struct {
	// Brokers lists the Kafka bootstrap brokers; empty turns events off.
	Brokers []string
}

func (c *EventsConfig) setDefaults() {}

// Validate reports configuration problems.
func (c *EventsConfig) Validate() error { return nil }

// events is the running event pipeline.
type events interface {
	Interceptor() grpc.UnaryServerInterceptor
	Checks() []server.Check
	Close()
}

// newEvents starts the event pipeline, or returns nil when events are off.
func newEvents(ctx context.Context, cfg EventsConfig, log *slog.Logger) (events, error) {
	return nil, nil
}
