package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"google.golang.org/grpc/codes"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// serveAdmin serves the admin listener: /healthz, /readyz with every
// check's details, /metrics.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, apierr.Errorf(codes.Unimplemented, "method %s is not allowed", r.Method))
		return
	}
	switch r.URL.Path {
	case "/healthz":
		s.healthz(w, r)
	case "/readyz":
		s.readyz(w, r, true)
	case "/metrics":
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.ServeHTTP(w, r)
			return
		}
		fallthrough
	default:
		writeError(w, http.StatusNotFound, apierr.Errorf(codes.NotFound, "no route for %q", r.URL.Path))
	}
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz answers whether this instance should receive traffic: 200 "ready"
// or "degraded" (a shared dependency fails), 503 "not ready" (a check of
// its own fails) or "draining". With details (the admin listener) the body
// also has every check's result; the public port says only the one word,
// since error texts name hosts, ports and internals.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, details bool) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	type result struct {
		name   string
		shared bool
		detail any
		err    error
	}
	results := make([]result, len(s.cfg.Ready))
	var wg sync.WaitGroup
	for i, c := range s.cfg.Ready {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := c.Func(ctx)
			results[i] = result{c.Name, c.Shared, d, err}
		}()
	}
	wg.Wait()
	body := map[string]any{}
	code, overall := http.StatusOK, "ready"
	if s.draining.Load() {
		code, overall = http.StatusServiceUnavailable, "draining"
	}
	for _, res := range results {
		entry := map[string]any{"ok": res.err == nil}
		if res.detail != nil {
			entry["detail"] = res.detail
		}
		if res.err != nil {
			entry["error"] = res.err.Error()
			switch {
			case !res.shared:
				code, overall = http.StatusServiceUnavailable, "not ready"
			case code == http.StatusOK:
				overall = "degraded"
			}
		}
		if details {
			body[res.name] = entry
		}
	}
	body["status"] = overall
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
