// Command gateway serves the shop API over REST and gRPC (by default on
// :8080 and :9090, server.DefaultHTTPAddr and server.DefaultGRPCAddr) and
// forwards every call to the Python service that owns it. It is the only
// place that reads flags and environment variables: each setting is
// declared once (options.go), with its flag, variable, default, range and
// README row.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/logbuf"
)

func main() {
	if err := run(flag.NewFlagSet("gateway", flag.ContinueOnError), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// defaultGCPercent is the garbage collector's target heap growth between
// collections (GOGC) that the gateway sets unless told otherwise. Go's own
// 100 collects so often under load (the live heap is a few MiB; each
// request allocates a few KiB) that the collector's assists and pauses set
// the gateway's tail latency; 400 cut the p99 of GET through the gateway
// binary to the reverse proxy's on the benchmark rig, for about 25 MiB more
// RSS (docs/benchmarks.md).
const defaultGCPercent = 400

// run declares the gateway's settings on fs, reads the environment and
// args, and serves until SIGINT or SIGTERM.
func run(fs *flag.FlagSet, args []string) error {
	var o options
	if err := o.declare().load(fs, os.LookupEnv); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, logOut, err := newLogger(os.Stderr, o.logFormat, o.logLevel, o.logFlush)
	if err != nil {
		return err
	}
	defer logOut.Close()
	if o.gcPercent > 0 {
		debug.SetGCPercent(int(o.gcPercent))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return app.Run(ctx, o.config(), log)
}

// newLogger builds the gateway's logger on out, through a buffer that the
// caller must Close to write out the last lines. flush 0 means no buffer.
func newLogger(out *os.File, format, level string, flush time.Duration) (*slog.Logger, *logbuf.Writer, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	format = strings.ToLower(format)
	switch format {
	case "json", "text":
	case "auto":
		format = "json"
		if fi, err := out.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	default:
		return nil, nil, fmt.Errorf("log format %q: want json, text or auto", format)
	}
	if flush == 0 {
		flush = -1 // logbuf's value for "no buffer"
	}
	w, err := logbuf.New(out, logbuf.Config{FlushInterval: flush})
	if err != nil {
		return nil, nil, err
	}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(logbuf.Handler(h, w)), w, nil
}
