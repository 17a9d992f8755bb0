package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	"github.com/shopgateway/shop/tests/harness"
)

// TestCartFallbackWithinDeadline hangs service_b (SIGSTOP) and then stops
// it: a cart read, with and without a caller's deadline, must still be
// answered from A's fallback cart, within the caller's deadline (a 2 s
// Grpc-Timeout or gRPC deadline gets the fallback, not 504), and /readyz
// must stay 200 with service_b reported not ok, since the gateway can
// still serve.
func TestCartFallbackWithinDeadline(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := newClients(t, s)
	product := createProduct(t, s, "budget", 10, 100)
	user := newID()
	do(t, s, http.StatusOK, "POST", "/cart/add", fmt.Sprintf(`{"user_id":%d,"product_id":%d,"quantity":1}`, user, product))
	waitCart(t, s, user, 1)
	wantReady(t, s, "ready", true)

	reads := func(t *testing.T, state string) {
		for _, tc := range []struct {
			name string
			hdr  []string
		}{
			{"REST without deadline", nil},
			{"REST with Grpc-Timeout 2S", []string{"Grpc-Timeout", "2S"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h, m := do(t, s, http.StatusOK, "GET", "/cart/"+str(user), "", tc.hdr...)
				if got, want := h.Get("X-Cart-Source"), "fallback"; got != want {
					t.Errorf("B %s: X-Cart-Source = %q, want %q", state, got, want)
				}
				if items := list(t, m, "items"); len(items) != 1 {
					t.Errorf("B %s: fallback cart %v, want the 1 item", state, items)
				}
			})
		}
		t.Run("gRPC with a 2 s deadline", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var hdr metadata.MD
			resp, err := c.cart.GetCart(ctx, &cartv1.GetCartRequest{UserId: user}, grpc.Header(&hdr))
			if err != nil {
				t.Fatalf("B %s: GetCart within 2 s: %v, want the fallback cart", state, err)
			}
			if got := hdr.Get("x-cart-source"); !slices.Equal(got, []string{"fallback"}) {
				t.Errorf("B %s: x-cart-source = %q, want [fallback]", state, got)
			}
			if len(resp.GetItems()) != 1 {
				t.Errorf("B %s: fallback cart %v, want the 1 item", state, resp.GetItems())
			}
		})
		t.Run("readyz", func(t *testing.T) { wantReady(t, s, "degraded", false) })
	}

	s.PauseServiceB()
	t.Run("B hung", func(t *testing.T) { reads(t, "hung") })
	s.ResumeServiceB()
	t.Run("B resumed", func(t *testing.T) { wantReady(t, s, "ready", true) })
	s.StopServiceB()
	t.Run("B down", func(t *testing.T) { reads(t, "down") })
	s.StartServiceB()
	t.Run("B back", func(t *testing.T) {
		eventually(t, syncTimeout, func() string {
			if _, source := restCart(t, s, "/cart/"+str(user)); source == "fallback" {
				return "GET /cart still answered from the fallback after service_b came back"
			}
			return ""
		})
		wantReady(t, s, "ready", true)
	})
}

// wantReady polls /readyz until it is 200 with the given overall status
// and, on the admin listener, service_b's ok flag (the health probes take a
// few seconds to notice). The public port's answer must be the same status
// word and nothing else.
func wantReady(tb testing.TB, s *harness.Stack, status string, bOK bool) {
	tb.Helper()
	eventually(tb, syncTimeout, func() string {
		code, body := s.Readiness(tb)
		a, _ := body["service_a"].(map[string]any)
		b, _ := body["service_b"].(map[string]any)
		if code != http.StatusOK || body["status"] != status || b["ok"] != bOK || a["ok"] != true {
			return fmt.Sprintf("admin /readyz = %d %v, want 200 with status %q, service_b ok %v, service_a ok", code, body, status, bOK)
		}
		pcode, _, raw := s.DoRaw(tb, "GET", "/readyz", "")
		if want := fmt.Sprintf(`{"status":%q}`, status); pcode != http.StatusOK || strings.TrimSpace(string(raw)) != want {
			return fmt.Sprintf("public /readyz = %d %s, want 200 %s", pcode, raw, want)
		}
		return ""
	})
}
