package server_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestRESTStrictBody checks the strict body decoding: every case is refused
// with the right status and a bounded message naming the problem, a body
// field's problem is a google.rpc.BadRequest field violation named by its
// path in proto field names, nothing in the answer is null or camelCase,
// and the service is never called.
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
		// wantFields are the fields of the BadRequest detail, in order;
		// nil for none.
		wantFields []string
	}{
		{"trailing garbage", "POST", "/cart/add", add + ` trailing {{{`, nil, 400, "after the JSON value", nil},
		{"two objects", "POST", "/cart/add", add + add, nil, 400, "after the JSON value", nil},
		{"text/plain", "POST", "/cart/add", add, []string{"Content-Type", "text/plain"}, 415, "application/json", nil},
		{"form", "POST", "/cart/add", add, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json", nil},
		{"bad media type", "POST", "/cart/add", add, []string{"Content-Type", ";;;"}, 415, "application/json", nil},
		{"latin-1", "POST", "/cart/add", add, []string{"Content-Type", "application/json; charset=latin1"}, 415, "application/json", nil},
		{"not an object", "POST", "/cart/add", `[1,2]`, nil, 400, "must be a JSON object", nil},
		{"null number", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":null}`, nil, 400, "quantity: must not be null", []string{"quantity"}},
		{"null by JSON name", "PUT", "/stock/1", `{"productName":null,"quantity":1,"price_cents":1}`, nil, 400, "product_name: must not be null", []string{"item.product_name"}},
		{"null list element", "POST", "/order/process_stock", `{"items":[{"product_id":1,"quantity":1},null]}`, nil, 400, "items[1]: must not be null", []string{"items[1]"}},
		{"required key missing", "PUT", "/stock/1", `{"product_name":"x","quantity":1}`, nil, 400, "price_cents: is required", []string{"item.price_cents"}},
		{"required id missing", "POST", "/stock/update", `{"quantity":1}`, nil, 400, "product_id: is required", []string{"product_id"}},
		{"required key missing in a line", "POST", "/order/process_stock", `{"items":[{"product_id":1}]}`, nil, 400, "items[0].quantity: is required", []string{"items[0].quantity"}},
		{"malformed", "POST", "/cart/add", `{"user_id":`, nil, 400, "malformed JSON", nil},
		{"unknown field", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":3,"x":1}`, nil, 400, "x: is not a field of AddCartItemRequest", []string{"x"}},
		{"unknown field in a line", "POST", "/order/process_stock", `{"items":[{"product_id":1,"quantity":1,"colour":"red"}]}`, nil, 400, "items[0].colour: is not a field", []string{"items[0].colour"}},
		{"field given twice", "POST", "/cart/add", `{"product_id":2,"productId":3,"quantity":3}`, nil, 400, "product_id: is given more than once", []string{"product_id"}},
		{"wrong type", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":"many"}`, nil, 400, "quantity: must be an integer", []string{"quantity"}},
		{"int64 not a number", "POST", "/cart/add", `{"product_id":"abc","quantity":1}`, nil, 400, "product_id: must be an integer", []string{"product_id"}},
		{"int64 by JSON name", "POST", "/cart/add", `{"productId":"abc","quantity":1}`, nil, 400, "product_id: must be an integer", []string{"product_id"}},
		{"int32 fraction", "POST", "/cart/add", `{"product_id":2,"quantity":1.5}`, nil, 400, "quantity: must be an integer", []string{"quantity"}},
		{"int32 overflow", "POST", "/cart/add", `{"product_id":2,"quantity":2147483648}`, nil, 400, "quantity: must be an integer from -2147483648 to 2147483647", []string{"quantity"}},
		{"int64 overflow", "POST", "/cart/add", `{"product_id":9223372036854775808,"quantity":1}`, nil, 400, "product_id: must be an integer from", []string{"product_id"}},
		{"int64 overflow as a string", "POST", "/cart/add", `{"product_id":"9223372036854775808","quantity":1}`, nil, 400, "product_id: must be an integer from", []string{"product_id"}},
		{"string as a number", "PUT", "/stock/1", `{"product_name":5,"quantity":1,"price_cents":1}`, nil, 400, "product_name: must be a string", []string{"item.product_name"}},
		{"wrong type in a line", "POST", "/order/process_stock", `{"items":[{"product_id":1,"quantity":1},{"product_id":true,"quantity":1}]}`, nil, 400, "items[1].product_id: must be an integer", []string{"items[1].product_id"}},
		{"list not an array", "POST", "/order/process_stock", `{"items":{"product_id":1}}`, nil, 400, "items: must be a JSON array", []string{"items"}},
		{"line not an object", "POST", "/order/process_stock", `{"items":[7]}`, nil, 400, "items[0]: must be a JSON object", []string{"items[0]"}},
		{"every problem at once", "POST", "/cart/add", `{"product_id":"abc","quantity":null,"colour":1}`, nil, 400, "product_id", []string{"product_id", "quantity", "colour"}},
		{"too large", "POST", "/cart/add", `{"user_id":1,"product_id":2,"quantity":3` + strings.Repeat(" ", 2000) + `}`, nil, 413, "larger than 1024 bytes", nil},
		{"path not a number", "GET", "/stock/abc", "", nil, 400, "product_id: is not a valid integer", []string{"product_id"}},
		{"path out of range", "GET", "/stock/9223372036854775808", "", nil, 400, "product_id: is not a valid integer in range", []string{"product_id"}},
		{"query not a number", "GET", "/cart?user_id=x", "", nil, 400, "user_id: is not a valid integer", []string{"user_id"}},
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
			if w := camelCase.FindString(msg); w != "" {
				t.Errorf("message %q names a field by its JSON name %q, want proto names", msg, w)
			}
			if got, want := strings.Join(violationFields(t, body), ","), strings.Join(tc.wantFields, ","); got != want {
				t.Errorf("BadRequest fields = [%s], want [%s]; body %v", got, want, body)
			}
			if hasNull(body) {
				raw, _ := json.Marshal(body)
				t.Errorf("the error has a null value in it: %s", raw)
			}
			if got := ts.calls.Load(); got != 0 {
				t.Errorf("the service chain was called %d times, want none", got)
			}
		})
	}
}

// camelCase matches a JSON field name such as productId.
var camelCase = regexp.MustCompile(`\b[a-z]+[A-Z][A-Za-z]*\b`)

// violationFields returns the field of each field violation of the
// google.rpc.BadRequest details of a REST error body, in order.
func violationFields(tb testing.TB, body map[string]any) []string {
	tb.Helper()
	var out []string
	details, _ := body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		fvs, _ := m["field_violations"].([]any)
		for _, fv := range fvs {
			f, _ := fv.(map[string]any)
			field, _ := f["field"].(string)
			out = append(out, field)
		}
	}
	return out
}

// hasNull reports whether a decoded JSON value holds a null anywhere.
func hasNull(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range v {
			if hasNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasNull(e) {
				return true
			}
		}
	}
	return false
}
