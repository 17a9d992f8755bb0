// Command gateway serves the shop API over REST (:8080) and gRPC (:9090) and
// forwards every call to the Python service that owns it. It is the only
// place that reads flags and environment variables; every flag has an
// environment fallback, listed in the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shopgateway/shop/gateway/internal/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// env returns the environment value of key, or def when unset or empty.
func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(key string, def int64) int64 {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

func run(args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var (
		httpAddr        = fs.String("http-addr", env("GATEWAY_HTTP_ADDR", ":8080"), "REST listen address (env GATEWAY_HTTP_ADDR)")
		grpcAddr        = fs.String("grpc-addr", env("GATEWAY_GRPC_ADDR", ":9090"), "gRPC listen address (env GATEWAY_GRPC_ADDR)")
		serviceA        = fs.String("service-a", env("SERVICE_A_URL", "http://127.0.0.1:8002"), "service A instances, comma-separated base URLs (env SERVICE_A_URL)")
		serviceB        = fs.String("service-b", env("SERVICE_B_URL", "http://127.0.0.1:8001"), "service B instances, comma-separated base URLs (env SERVICE_B_URL)")
		upstreamTimeout = fs.Duration("upstream-timeout", envDuration("GATEWAY_UPSTREAM_TIMEOUT", 10*time.Second), "upstream call bound when the caller sets no deadline (env GATEWAY_UPSTREAM_TIMEOUT)")
		shutdownTimeout = fs.Duration("shutdown-timeout", envDuration("GATEWAY_SHUTDOWN_TIMEOUT", 15*time.Second), "drain bound on SIGTERM (env GATEWAY_SHUTDOWN_TIMEOUT)")
		logFormat       = fs.String("log-format", env("GATEWAY_LOG_FORMAT", "auto"), "log format: json, text, or auto (text on a terminal) (env GATEWAY_LOG_FORMAT)")
		logLevel        = fs.String("log-level", env("GATEWAY_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env GATEWAY_LOG_LEVEL)")
	)
	_ = envInt
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg := app.Config{
		HTTPAddr:        *httpAddr,
		GRPCAddr:        *grpcAddr,
		ServiceA:        app.SplitList(*serviceA),
		ServiceB:        app.SplitList(*serviceB),
		UpstreamTimeout: *upstreamTimeout,
		ShutdownTimeout: *shutdownTimeout,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, cfg, log)
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "auto":
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want json, text or auto", format)
}
