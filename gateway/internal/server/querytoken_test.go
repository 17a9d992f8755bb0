package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	cartv1 "github.com/shopgateway/shop/gen/shop/cart/v1"
	stockv1 "github.com/shopgateway/shop/gen/shop/stock/v1"
)

// TestQueryToken: access_token becomes the Authorization header only on a
// GET of an event stream that Accepts text/event-stream, alone and once;
// everywhere else the request is refused; in every case the token is gone
// from the URL that the rest of the handlers see.
func TestQueryToken(t *testing.T) {
	t.Parallel()
	routes, err := restRoutes([]protoreflect.ServiceDescriptor{
		cartv1.File_shop_cart_v1_cart_proto.Services().Get(0),
		stockv1.File_shop_stock_v1_stock_proto.Services().Get(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	const sse = "text/event-stream"
	for _, tc := range []struct {
		name, method, target, accept, auth string
		wantAuth, wantQuery, wantRefused   string // wantRefused: a word of the error, "" if accepted
		wantReferrer                       bool
	}{
		{name: "event stream", method: "GET", target: "/cart/events?access_token=T1", accept: sse, wantAuth: "Bearer T1", wantReferrer: true},
		{name: "other parameters kept", method: "GET", target: "/stock/events?product_ids=2&access_token=T1&product_ids=1", accept: sse,
			wantAuth: "Bearer T1", wantQuery: "product_ids=2&product_ids=1", wantReferrer: true},
		{name: "no token", method: "GET", target: "/cart/events?user_id=1", accept: sse, wantQuery: "user_id=1"},
		{name: "header only", method: "GET", target: "/cart/events", accept: sse, auth: "Bearer H", wantAuth: "Bearer H"},
		{name: "header and query", method: "GET", target: "/cart/events?access_token=T1", accept: sse, auth: "Bearer H",
			wantAuth: "Bearer H", wantRefused: "not both", wantReferrer: true},
		{name: "twice", method: "GET", target: "/cart/events?access_token=T1&access_token=T2", accept: sse, wantRefused: "at most once", wantReferrer: true},
		{name: "empty", method: "GET", target: "/cart/events?access_token=", accept: sse, wantRefused: "empty", wantReferrer: true},
		{name: "percent-encoded name", method: "GET", target: "/cart/events?%61ccess_token=T1", accept: sse, wantAuth: "Bearer T1", wantReferrer: true},
		{name: "NDJSON stream", method: "GET", target: "/cart/events?access_token=T1", accept: "application/json", wantRefused: "Accept: text/event-stream", wantReferrer: true},
		{name: "unary route", method: "GET", target: "/cart?access_token=T1", accept: sse, wantRefused: "Authorization header"},
		{name: "unary POST", method: "POST", target: "/cart/add?access_token=T1", wantRefused: "Authorization header"},
		{name: "HEAD of a stream", method: "HEAD", target: "/cart/events?access_token=T1", accept: sse, wantRefused: "Authorization header"},
		{name: "malformed query", method: "GET", target: "/cart/events?access_token=T1&x=%zz", accept: sse, wantRefused: "malformed", wantReferrer: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			h := queryToken(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r }), routes)
			req := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got == nil {
				t.Fatal("next not called")
			}
			if strings.Contains(got.URL.String(), "T1") || strings.Contains(got.RequestURI, "T1") {
				t.Errorf("the token is still in the URL: %s (%s)", got.URL, got.RequestURI)
			}
			if got.URL.RawQuery != tc.wantQuery {
				t.Errorf("query %q, want %q", got.URL.RawQuery, tc.wantQuery)
			}
			if a := got.Header.Get("Authorization"); tc.wantRefused == "" && a != tc.wantAuth {
				t.Errorf("Authorization %q, want %q", a, tc.wantAuth)
			}
			refused := queryTokenRefused(got.Context())
			switch {
			case tc.wantRefused == "" && refused != nil:
				t.Errorf("refused: %v", refused)
			case tc.wantRefused != "" && (refused == nil || !strings.Contains(refused.Error(), tc.wantRefused)):
				t.Errorf("refusal %v, want one saying %q", refused, tc.wantRefused)
			case refused != nil && strings.Contains(refused.Error(), "T1"):
				t.Errorf("the refusal echoes the token: %v", refused)
			}
			if tc.wantRefused != "" && got.Header.Get("Authorization") == "Bearer T1" {
				t.Error("a refused token became the Authorization header")
			}
			if rp := rec.Header().Get("Referrer-Policy"); (rp == "no-referrer") != tc.wantReferrer {
				t.Errorf("Referrer-Policy %q, want it set: %v", rp, tc.wantReferrer)
			}
		})
	}
}
