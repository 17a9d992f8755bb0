package main

import (
	"log/slog"
	"os"
	"sync"

	"github.com/shopgateway/shop/gateway/internal/logbuf"
)

// gatewayLogs gives each in-process gateway a JSON logger on a file of its
// own in a temporary directory, as the binary logs to its standard error,
// so that the access log's formatting and writing are part of what is
// measured.
type gatewayLogs struct {
	dir   string
	mu    sync.Mutex
	files []*os.File
	bufs  []*logbuf.Writer
}

func newGatewayLogs() (*gatewayLogs, error) {
	dir, err := os.MkdirTemp("", "gwbench-logs-")
	if err != nil {
		return nil, err
	}
	return &gatewayLogs{dir: dir}, nil
}

// logger returns a new logger on a new file, buffered as the gateway binary
// buffers by default, or writing every line at once.
func (l *gatewayLogs) logger(buffered bool) (*slog.Logger, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.CreateTemp(l.dir, "gateway-*.log")
	if err != nil {
		return nil, err
	}
	cfg := logbuf.Config{}
	if !buffered {
		cfg.FlushInterval = -1
	}
	w, err := logbuf.New(f, cfg)
	if err != nil {
		f.Close()
		return nil, err
	}
	l.files, l.bufs = append(l.files, f), append(l.bufs, w)
	return slog.New(logbuf.Handler(slog.NewJSONHandler(w, nil), w)), nil
}

func (l *gatewayLogs) close() {
	for i, w := range l.bufs {
		_ = w.Close()
		_ = l.files[i].Close()
	}
	_ = os.RemoveAll(l.dir)
}
