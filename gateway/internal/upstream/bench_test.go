package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkPoolDo compares a call through a Pool with the same call
// through net/http's client on a transport tuned as a proxy's would be
// (512 idle connections per host) and on http.DefaultClient (Go's default
// transport, 2 idle connections per host), against one local upstream
// answering a small JSON body, with as many callers as CPUs and with 16 per
// CPU (a loaded gateway). The in-process upstream's allocations and CPU are
// counted too, the same for all. cpu-µs/op is the process's CPU time per
// call, steadier than ns/op on a shared machine.
func BenchmarkPoolDo(b *testing.B) {
	const answerBody = `{"product_id":"7","product_name":"apple","quantity":10,"price_cents":99}`
	srv := httptest.NewServer(answer(http.StatusOK, answerBody))
	b.Cleanup(srv.Close)
	requestBody := []byte(`{"user_id":"1","product_id":"7","quantity":2}`)

	cases := []struct {
		name   string
		method string
		path   string
		body   []byte
	}{
		{"GET", http.MethodGet, "/stock/7?view=full", nil},
		{"POST", http.MethodPost, "/cart/add", requestBody},
	}
	for _, c := range cases {
		for _, perCPU := range []int{1, 16} {
			name := fmt.Sprintf("%s/callers=%dxCPU", c.name, perCPU)
			b.Run(name+"/upstream.Pool", func(b *testing.B) {
				p := newTestPool(b, []string{srv.URL}, Options{})
				runCallers(b, perCPU, func(ctx context.Context) error {
					req := &Request{Method: c.method, Path: c.path, Body: c.body, Header: http.Header{"X-Request-Id": {"r1"}}}
					resp, err := p.Do(ctx, req)
					if err == nil && len(resp.Body) != len(answerBody) {
						err = fmt.Errorf("got %d bytes", len(resp.Body))
					}
					return err
				})
			})
			tuned := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, DisableCompression: true}}
			for _, hc := range []struct {
				name   string
				client *http.Client
			}{{"net/http tuned", tuned}, {"http.DefaultClient", http.DefaultClient}} {
				b.Run(name+"/"+hc.name, func(b *testing.B) {
					b.Cleanup(hc.client.CloseIdleConnections)
					url := srv.URL + c.path
					runCallers(b, perCPU, func(ctx context.Context) error {
						var body io.Reader
						if c.body != nil {
							body = bytes.NewReader(c.body)
						}
						req, err := http.NewRequestWithContext(ctx, c.method, url, body)
						if err != nil {
							return err
						}
						req.Header.Set("X-Request-Id", "r1")
						req.Header.Set("Accept", "application/json")
						if c.body != nil {
							req.Header.Set("Content-Type", "application/json")
						}
						res, err := hc.client.Do(req)
						if err != nil {
							return err
						}
						got, err := io.ReadAll(res.Body)
						_ = res.Body.Close()
						if err == nil && len(got) != len(answerBody) {
							err = fmt.Errorf("got %d bytes", len(got))
						}
						return err
					})
				})
			}
		}
	}
}

// runCallers runs call from perCPU callers per CPU until b.N calls are
// made, reporting allocations and CPU per call; the first error fails b.
func runCallers(b *testing.B, perCPU int, call func(ctx context.Context) error) {
	b.SetParallelism(perCPU)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := call(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
