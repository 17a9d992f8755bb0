package harness

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// restClient is shared by every Do; 30s bounds a call the gateway would
// itself time out.
var restClient = &http.Client{Timeout: 30 * time.Second}

// Do sends one REST request to the gateway and returns the status, the
// response headers and the body decoded as a JSON object (nil when the body
// is empty or not an object; JSON numbers become float64). path includes the
// query; body is sent as application/json unless empty; headers are
// name, value pairs, which replace the defaults (a name given twice is sent
// twice). A transport error fails tb.
//
// The request carries the stack's admin token unless headers name
// Authorization: its value is sent instead, and an empty value sends none.
func (s *Stack) Do(tb testing.TB, method, path, body string, headers ...string) (int, http.Header, map[string]any) {
	tb.Helper()
	status, h, raw := s.DoRaw(tb, method, path, body, headers...)
	var m map[string]any
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			m = nil
		}
	}
	return status, h, m
}

// Readiness gets /readyz from the gateway's admin listener: its status and
// its body, which has every check's details (the public port's has only
// the status word).
func (s *Stack) Readiness(tb testing.TB) (int, map[string]any) {
	tb.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.AdminURL() + "/readyz")
	if err != nil {
		tb.Fatalf("harness: GET %s/readyz: %v", s.AdminURL(), err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		tb.Fatalf("harness: admin /readyz body: %v", err)
	}
	return resp.StatusCode, m
}

// DoRaw is Do returning the undecoded body.
func (s *Stack) DoRaw(tb testing.TB, method, path, body string, headers ...string) (int, http.Header, []byte) {
	tb.Helper()
	if len(headers)%2 != 0 {
		tb.Fatalf("harness: Do %s %s: headers must be name, value pairs, got %d strings", method, path, len(headers))
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.RESTURL()+path, rd)
	if err != nil {
		tb.Fatalf("harness: Do %s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	auth := false
	given := map[string]bool{} // a name given twice is sent twice
	for i := 0; i < len(headers); i += 2 {
		name := http.CanonicalHeaderKey(headers[i])
		if name == "Authorization" {
			auth = true
			if headers[i+1] == "" {
				continue
			}
		}
		if given[name] {
			req.Header.Add(name, headers[i+1])
			continue
		}
		given[name] = true
		req.Header.Set(name, headers[i+1])
	}
	if !auth {
		req.Header.Set("Authorization", Bearer(s.AdminToken(tb)))
	}
	resp, err := restClient.Do(req)
	if err != nil {
		tb.Fatalf("harness: Do %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("harness: Do %s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, raw
}
