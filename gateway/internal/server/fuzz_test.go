package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/app"
	"github.com/shopgateway/shop/gateway/internal/forward"
	"github.com/shopgateway/shop/gateway/internal/server"
	"github.com/shopgateway/shop/gateway/internal/svcid"
	"github.com/shopgateway/shop/gateway/internal/upstream"
)

// echoDoer answers every upstream call with a fixed valid body, so the fuzz
// target exercises decoding, transcoding, request building and response
// encoding without a network.
type echoDoer struct{ body []byte }

func (d echoDoer) Do(_ context.Context, r *upstream.Request) (*upstream.Response, error) {
	if strings.ContainsAny(r.Path, " \n\r") {
		panic("unescaped upstream path " + r.Path)
	}
	if len(r.Body) > 0 && !json.Valid(r.Body) {
		panic("invalid upstream JSON body")
	}
	return &upstream.Response{Status: 200, Body: d.body}, nil
}

func newFuzzHandler(tb testing.TB) http.Handler {
	tb.Helper()
	doer := echoDoer{body: []byte(`{}`)}
	fwd, err := forward.New(app.Services(), forward.DefaultTable, map[string]forward.Doer{forward.ServiceA: doer, forward.ServiceB: doer}, forward.Options{Asserter: fuzzAsserter(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Config{
		Services: app.Services(),
		Register: app.Registers(),
		Handler:  fwd.Handle,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv.HTTPHandler()
}

var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}

// FuzzRESTForward feeds arbitrary methods, paths, queries and bodies through
// the REST decode → forward path. Whatever the input, the gateway must not
// panic, must answer JSON, and must answer either success or a client error
// (4xx) — never a 5xx, since the fake upstream always succeeds.
func FuzzRESTForward(f *testing.F) {
	seeds := []struct {
		method uint8
		path   string
		body   string
	}{
		{0, "/stock?page_size=2&page_token=abc", ""},
		{0, "/stock/1", ""},
		{1, "/stock", `{"product_id":1,"product_name":"tea","quantity":3,"price_cents":"250"}`},
		{2, "/stock/1", `{"product_name":"tea","quantity":3}`},
		{3, "/stock/1", ""},
		{1, "/stock/update", `{"product_id":"1","quantity":0}`},
		{1, "/cart/add", `{"user_id":1,"product_id":2,"quantity":1}`},
		{1, "/cart/fallback", `{"user_id":1}`},
		{0, "/cart/fallback/1", ""},
		{0, "/cart?user_id=1", ""},
		{0, "/cart/1", ""},
		{3, "/cart/7", ""},
		{0, "/order?user_id=1", ""},
		{0, "/order/9", ""},
		{1, "/order/pay", `{"user_id":1}`},
		{1, "/order/process_stock", `{"items":[{"product_id":1,"quantity":2}]}`},
		{1, "/stock", `{`},
		{1, "/stock", `{"product_id":"x"}`},
		{4, "/stock", ""},
		{0, "/stock/%2F..%2F", ""},
		{1, "/cart/add", `{"user_id":1e400}`},
		{0, "/stock?page_size=-1&page_size=99999999999", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body)
	}
	h := newFuzzHandler(f)
	f.Fuzz(func(t *testing.T, method uint8, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/healthz") || strings.HasPrefix(path, "/readyz") {
			return
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://gw"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %q %q: status %d: %s", req.Method, path, body, w.Code, w.Body.String())
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %q: body is not JSON: %q", req.Method, path, w.Body.String())
		}
	})
}

func fuzzAsserter(tb testing.TB) *svcid.Signer {
	tb.Helper()
	s, _, err := svcid.Generate("shop-gateway")
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
