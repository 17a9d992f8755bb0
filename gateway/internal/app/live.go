package app

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/live"
	"github.com/shopgateway/shop/gateway/internal/metrics"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// LiveConfig bounds the Watch streams. Zero fields take live's defaults.
type LiveConfig struct {
	// MaxStreams caps this instance's open streams. Default
	// live.DefaultMaxStreams (10000).
	MaxStreams int
	// MaxStreamsPerUser caps one caller's open streams (the token's user,
	// else the client address). Default live.DefaultMaxStreamsPerUser (8).
	MaxStreamsPerUser int
	// Buffer is how many events a stream may fall behind before it is
	// ended with RESOURCE_EXHAUSTED. Default live.DefaultBuffer (256).
	Buffer int
	// MaxAge ends a stream after this long (the client resumes). Default
	// live.DefaultMaxAge (1h).
	MaxAge time.Duration
	// Heartbeat is how long a stream goes without a message before it is
	// sent its position. Default live.DefaultHeartbeat (15s).
	Heartbeat time.Duration
}

// newLive starts the hub that serves the Watch streams from the event
// topics. Without Kafka brokers (events off) the streams answer
// UNAVAILABLE.
func (g *Gateway) newLive(cfg Config, m *metrics.Metrics, log *slog.Logger) (server.StreamHandler, func(), error) {
	if len(cfg.Events.Brokers) == 0 {
		off := func(context.Context, string, proto.Message, func(proto.Message) error) error {
			return apierr.New(codes.Unavailable, "live updates are off: the gateway has no Kafka brokers")
		}
		return off, nil, nil
	}
	hub, err := live.New(live.Config{
		Brokers:           cfg.Events.Brokers,
		Topics:            cfg.Events.Topics,
		MaxStreams:        cfg.Live.MaxStreams,
		MaxStreamsPerUser: cfg.Live.MaxStreamsPerUser,
		Buffer:            cfg.Live.Buffer,
		MaxAge:            cfg.Live.MaxAge,
		Heartbeat:         cfg.Live.Heartbeat,
		Logger:            log.With(slog.String("component", "live")),
	})
	if err != nil {
		return nil, nil, err
	}
	g.closers = append(g.closers, hub.Close)
	m.GaugeFunc("shop_gateway_live_streams", "Open Watch streams (live updates) on this instance.",
		func() float64 { return float64(hub.Streams()) })
	return hub.Serve, hub.Drain, nil
}
