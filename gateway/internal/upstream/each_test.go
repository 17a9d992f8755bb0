package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestGetEachAsksEveryInstanceAndBoundsTheAnswers(t *testing.T) {
	t.Parallel()
	serve := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	urls := []string{
		serve(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/openapi.json" || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write([]byte(`{"openapi":"3.1.0"}`))
		}),
		serve(http.NotFound),
		serve(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(strings.Repeat("x", 2048))) }),
		serve(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}),
	}
	p := newTestPool(t, urls, Options{MaxResponseBytes: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := p.GetEach(ctx, "/openapi.json")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("GetEach took %s; the context allowed 300ms", took)
	}
	if len(got) != len(urls) {
		t.Fatalf("got %d answers, want %d", len(got), len(urls))
	}
	if got[0].Err != nil || string(got[0].Body) != `{"openapi":"3.1.0"}` || got[0].Instance != urls[0] {
		t.Errorf("instance 1: got %+v", got[0])
	}
	if got[1].Err == nil || got[1].Status != http.StatusNotFound {
		t.Errorf("instance 2 (404): got err %v, status %d; want an error with status 404", got[1].Err, got[1].Status)
	}
	if got[2].Err == nil || len(got[2].Body) > 1024 {
		t.Errorf("instance 3 (2 KiB over a 1 KiB cap): got err %v, %d bytes; want an error", got[2].Err, len(got[2].Body))
	}
	if got[3].Err == nil {
		t.Errorf("instance 4 (hangs): got no error")
	}
}
