package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/server"
)

// TestReadyzShared: a failing shared dependency (an upstream service) is
// shown but leaves /readyz 200 "degraded"; a failing check of the instance
// itself (its outbox) makes it 503. The public port says only the verdict;
// the admin handler also shows each check and its error.
func TestReadyzShared(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) (any, error) { return nil, nil }
	down := func(context.Context) (any, error) { return nil, errors.New("down") }
	for _, tc := range []struct {
		name       string
		checks     []server.Check
		wantStatus int
		wantState  string
	}{
		{"all ok", []server.Check{{Name: "service_b", Shared: true, Func: ok}, {Name: "outbox", Func: ok}}, 200, "ready"},
		{"service down", []server.Check{{Name: "service_b", Shared: true, Func: down}, {Name: "outbox", Func: ok}}, 200, "degraded"},
		{"outbox full", []server.Check{{Name: "service_b", Shared: true, Func: ok}, {Name: "outbox", Func: down}}, 503, "not ready"},
		{"both", []server.Check{{Name: "service_b", Shared: true, Func: down}, {Name: "outbox", Func: down}}, 503, "not ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, err := server.New(server.Config{
				Services: app.Services(),
				Register: app.Registers(),
				Handler:  fakeHandler,
				Ready:    tc.checks,
				Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, port := range []struct {
				name    string
				h       http.Handler
				details bool
			}{{"public", srv.HTTPHandler(), false}, {"admin", srv.AdminHandler(), true}} {
				rec := httptest.NewRecorder()
				port.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				var body map[string]any
				_ = json.Unmarshal(rec.Body.Bytes(), &body)
				if got, want := rec.Code, tc.wantStatus; got != want {
					t.Errorf("%s: status = %d, want %d (%s)", port.name, got, want, rec.Body)
				}
				if got, want := body["status"], tc.wantState; got != want {
					t.Errorf("%s: status field = %v, want %q", port.name, got, want)
				}
				_, hasB := body["service_b"]
				if got, want := hasB, port.details; got != want {
					t.Errorf("%s: body %s shows the checks: %v, want %v", port.name, rec.Body, got, want)
				}
				if !port.details && (len(body) != 1 || strings.Contains(rec.Body.String(), "down")) {
					t.Errorf("%s: body %s, want only the status word", port.name, rec.Body)
				}
			}
		})
	}
}
