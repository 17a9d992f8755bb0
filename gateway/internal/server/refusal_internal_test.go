package server

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
)

// A connection over a cap is answered with a google.rpc.Status made by
// apierr: 429 RESOURCE_EXHAUSTED per address, 503 UNAVAILABLE overall, each
// with a RetryInfo and Retry-After.
func TestRefusalIsAStatus(t *testing.T) {
	for _, tc := range []struct {
		perIP  bool
		status int
		code   codes.Code
	}{{true, http.StatusTooManyRequests, codes.ResourceExhausted}, {false, http.StatusServiceUnavailable, codes.Unavailable}} {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(refusal(tc.perIP))), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		var st spb.Status
		if err := protojson.Unmarshal(body, &st); err != nil {
			t.Fatalf("perIP=%v: body %s: %v", tc.perIP, body, err)
		}
		if resp.StatusCode != tc.status || codes.Code(st.Code) != tc.code || resp.Header.Get("Retry-After") != "1" || len(st.Details) != 1 {
			t.Errorf("perIP=%v: %d %s, Retry-After %q, body %s", tc.perIP, resp.StatusCode, codes.Code(st.Code), resp.Header.Get("Retry-After"), body)
		}
	}
}
