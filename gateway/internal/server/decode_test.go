package server_test

import (
	"strings"
	"testing"
)

// TestRESTStrictBody checks the strict body decoding: every case is refused
// with the right status and a bounded message naming the problem, and the
// service is never called.
func TestRESTStrictBody(t *testing.T) {
	t.Parallel()
	const add = `{"user_id":1,"product_id":2,"quantity":3}`
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		wantStatus   int
		wantInMsg    string
	}{
		{"trailing garbage", "POST", "/cart/add", add + ` trailing {{{`, nil, 400, "after the JSON value"},
		{"two objects", "POST", "/cart/add", add + add, nil, 400, "after the JSON value"},
		{"text/plain", "POST", "/cart/add", add, []string{"Content-Type", "text/plain"}, 415, "application/json"},
		{"form", "POST", "/cart/add", add, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"bad media type", "POST", "/cart/add", add, []string{"Content-Type", ";;;"}, 415, "application/json"},
		{"latin-1", "POST", "/cart/add", add, []string{"Content-Type", "application/json; charset=latin1"}, 415, "application/json"},
		{"null number", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":null}`, nil, 400, "quantity: must not be null"},
		{"null by JSON name", "PUT", "/stock/1", `{"productName":null,"quantity":1,"price_cents":1}`, nil, 400, "product_name: must not be null"},
		{"null list element", "POST", "/order/process_stock", `{"items":[{"product_id":1,"quantity":1},null]}`, nil, 400, "items[1]: must not be null"},
		{"required key missing", "PUT", "/stock/1", `{"product_name":"x","quantity":1}`, nil, 400, "price_cents: is required"},
		{"required id missing", "POST", "/stock/update", `{"quantity":1}`, nil, 400, "product_id: is required"},
		{"required key missing in a line", "POST", "/order/process_stock", `{"items":[{"product_id":1}]}`, nil, 400, "items[0].quantity: is required"},
		{"malformed", "POST", "/cart/add", `{"user_id":`, nil, 400, "malformed JSON"},
		{"unknown field", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":3,"x":1}`, nil, 400, `unknown field "x"`},
		{"wrong type", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":"many"}`, nil, 400, "quantity"},
		{"too large", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":3` + strings.Repeat(" ", 2000) + `}`, nil, 413, "larger than 1024 bytes"},
		{"path not a number", "GET", "/stock/abc", "", nil, 400, "product_id: is not a valid integer"},
		{"path out of range", "GET", "/stock/9223372036854775808", "", nil, 400, "product_id: is not a valid integer in range"},
		{"query not a number", "GET", "/cart?user_id=x", "", nil, 400, "user_id: is not a valid integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			resp, body := ts.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			if got, want := resp.StatusCode, tc.wantStatus; got != want {
				t.Errorf("status = %d %v, want %d", got, body, want)
			}
			msg, _ := body["message"].(string)
			if !strings.Contains(msg, tc.wantInMsg) {
				t.Errorf("message %q, want it to contain %q", msg, tc.wantInMsg)
			}
			for _, leak := range []string{"strconv", "proto:", "(line "} {
				if strings.Contains(msg, leak) {
					t.Errorf("message %q shows parser internals (%s)", msg, leak)
				}
			}
			if got := ts.calls.Load(); got != 0 {
				t.Errorf("the service chain was called %d times, want none", got)
			}
		})
	}
}
