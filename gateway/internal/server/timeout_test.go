package server_test

import (
	"net/http"
	"testing"
)

// TestRESTGrpcTimeoutHeader checks that a Grpc-Timeout header that is sent
// must have the gRPC form: anything else is 400 INVALID_ARGUMENT naming the
// header, and the RPC is not called; a valid one is used.
func TestRESTGrpcTimeoutHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		hdr        []string
		wantStatus int
	}{
		{"absent", nil, http.StatusOK},
		{"seconds", []string{"Grpc-Timeout", "5S"}, http.StatusOK},
		{"leading zeros", []string{"Grpc-Timeout", "0005S"}, http.StatusBadRequest},
		{"zero", []string{"Grpc-Timeout", "0S"}, http.StatusBadRequest},
		{"zero milliseconds", []string{"Grpc-Timeout", "000m"}, http.StatusBadRequest},
		{"eight digits", []string{"Grpc-Timeout", "99999999m"}, http.StatusOK},
		{"empty", []string{"Grpc-Timeout", ""}, http.StatusBadRequest},
		{"nine digits", []string{"Grpc-Timeout", "123456789S"}, http.StatusBadRequest},
		{"unknown unit", []string{"Grpc-Timeout", "5s"}, http.StatusBadRequest},
		{"no unit", []string{"Grpc-Timeout", "5"}, http.StatusBadRequest},
		{"leading junk", []string{"Grpc-Timeout", "x5S"}, http.StatusBadRequest},
		{"sign", []string{"Grpc-Timeout", "+5S"}, http.StatusBadRequest},
		{"two values", []string{"Grpc-Timeout", "5S", "Grpc-Timeout", "6S"}, http.StatusBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			resp, body := ts.do(t, "GET", "/stock/1", "", tc.hdr...)
			if got, want := resp.StatusCode, tc.wantStatus; got != want {
				t.Fatalf("status = %d %v, want %d", got, body, want)
			}
			calls := ts.calls.Load()
			if tc.wantStatus == http.StatusOK {
				if calls != 1 {
					t.Errorf("the RPC was called %d times, want once", calls)
				}
				return
			}
			if calls != 0 {
				t.Errorf("the RPC was called %d times, want none", calls)
			}
			if got, want := body["code"], float64(3); got != want {
				t.Errorf("code = %v, want %v (INVALID_ARGUMENT)", got, want)
			}
			if got, want := fieldViolations(body), "Grpc-Timeout"; len(got) != 1 || got[0] != want {
				t.Errorf("field violations %v, want [%s]", got, want)
			}
		})
	}
}

// fieldViolations lists the fields of a google.rpc.BadRequest detail of a
// google.rpc.Status JSON body.
func fieldViolations(body map[string]any) []string {
	var out []string
	details, _ := body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		vs, _ := m["field_violations"].([]any)
		for _, v := range vs {
			if f, ok := v.(map[string]any)["field"].(string); ok {
				out = append(out, f)
			}
		}
	}
	return out
}
