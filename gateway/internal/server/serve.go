package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/connlimit"
)

// capListeners puts the connection caps on both listeners. A REST
// connection over a cap is answered with a google.rpc.Status: 429 over the
// per-address cap, 503 over the overall one.
func (s *Server) capListeners(hl, gl net.Listener) (net.Listener, net.Listener, error) {
	onRefuse := func(port string) func(string, bool) {
		return func(remote string, perIP bool) {
			s.cfg.Logger.Warn("connection refused over the cap", slog.String("port", port), slog.String("remote", remote), slog.Bool("per_ip", perIP))
		}
	}
	caps := func(port string, refuse func(bool) []byte) connlimit.Config {
		return connlimit.Config{Max: s.cfg.MaxConns, MaxPerIP: s.cfg.MaxConnsPerIP, FirstByteTimeout: s.cfg.FirstByteTimeout,
			Shared: s.cfg.TrustedProxies, Refuse: refuse, OnRefuse: onRefuse(port)}
	}
	h, err := connlimit.Wrap(hl, caps("http", refusal))
	if err != nil {
		return nil, nil, err
	}
	g, err := connlimit.Wrap(gl, caps("grpc", nil))
	if err != nil {
		return nil, nil, err
	}
	return h, g, nil
}

// refusal is the HTTP answer to a connection over a cap, written on the
// raw connection before any http.Server has it: a google.rpc.Status made
// by apierr, as every other error (429 RESOURCE_EXHAUSTED over the
// per-address cap, 503 UNAVAILABLE with its RetryInfo over the overall one).
func refusal(perIP bool) []byte {
	code, err := http.StatusServiceUnavailable, apierr.New(codes.Unavailable, "the gateway is at its connection limit; retry later")
	if perIP {
		code, err = http.StatusTooManyRequests, apierr.New(codes.ResourceExhausted, "too many connections from this address; close some and retry").WithRetryDelay(time.Second)
	}
	code, body := errorBody(code, err)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// Serve listens on the configured addresses (the admin one too, when set)
// and serves until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	var ls []net.Listener
	for _, addr := range []string{s.cfg.HTTPAddr, s.cfg.GRPCAddr, s.cfg.AdminAddr} {
		if addr == "" { // only the admin address may be empty: no admin listener
			ls = append(ls, nil)
			continue
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, o := range ls {
				if o != nil {
					o.Close()
				}
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return s.serve(ctx, ls[0], ls[1], ls[2])
}

// ServeListeners serves REST on hl and gRPC on gl until ctx is done, then
// drains both within ShutdownTimeout: readiness turns 503 and gRPC health
// NOT_SERVING first, in-flight requests finish, new ones are refused. It
// serves no admin listener.
func (s *Server) ServeListeners(ctx context.Context, hl, gl net.Listener) error {
	return s.serve(ctx, hl, gl, nil)
}

// ServeAdminListeners is ServeListeners with the admin handler served on
// al as well, until the drain is over.
func (s *Server) ServeAdminListeners(ctx context.Context, hl, gl, al net.Listener) error {
	return s.serve(ctx, hl, gl, al)
}

// httpServer serves h with the configured timeouts and header bound.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
}

func (s *Server) serve(ctx context.Context, hl, gl, al net.Listener) error {
	hl, gl, err := s.capListeners(hl, gl)
	if err != nil {
		return err
	}
	hs := s.httpServer(s.http)
	errc := make(chan error, 3)
	go func() {
		if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	go func() {
		if err := s.grpc.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	var as *http.Server
	attrs := []any{slog.String("http_addr", hl.Addr().String()), slog.String("grpc_addr", gl.Addr().String())}
	if al != nil {
		// The admin listener answers the operator, not the public: the
		// same timeouts, no connection caps of its own (it is bound to a
		// private address).
		as = s.httpServer(s.admin)
		go func() {
			if err := as.Serve(al); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("admin: %w", err)
			}
		}()
		attrs = append(attrs, slog.String("admin_addr", al.Addr().String()))
	}
	s.cfg.Logger.Info("serving", attrs...)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.draining.Store(true)
	s.health.Shutdown()
	if s.cfg.OnDrain != nil {
		s.cfg.OnDrain()
	}
	s.cfg.Logger.Info("shutting down", slog.Duration("timeout", s.cfg.ShutdownTimeout))

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		s.cfg.Logger.Warn("http drain timed out", slog.Any("error", err))
	}
	select {
	case <-done:
	case <-sctx.Done():
		s.grpc.Stop()
		s.cfg.Logger.Warn("grpc drain timed out")
	}
	// The admin listener goes last: it reports "draining" until the end.
	if as != nil {
		_ = as.Close()
	}
	return serveErr
}
