package apidocs_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shopgateway/shop/gateway/internal/apidocs"
	"github.com/shopgateway/shop/gen/asyncapi"
	"github.com/shopgateway/shop/gen/openapi"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	h := apidocs.New()
	cases := []struct {
		name, method, path string
		wantStatus         int
		wantType           string
		wantBody           string // a substring of the body
	}{
		{"document", "GET", "/openapi.json", 200, "application/json", `"openapi": "3.`},
		{"document HEAD", "HEAD", "/openapi.json", 200, "application/json", ""},
		{"event document", "GET", "/asyncapi.json", 200, "application/json", `"asyncapi": "3.`},
		{"event document HEAD", "HEAD", "/asyncapi.json", 200, "application/json", ""},
		{"event document wrong method", "PUT", "/asyncapi.json", 405, "", ""},
		{"explorer page", "GET", "/docs/", 200, "text/html; charset=utf-8", `src="swagger-ui-bundle.js"`},
		{"explorer without slash", "GET", "/docs", 301, "", ""},
		{"explorer script", "GET", "/docs/docs.js", 200, "text/javascript; charset=utf-8", `url: "../openapi.json"`},
		{"swagger ui bundle", "GET", "/docs/swagger-ui-bundle.js", 200, "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"swagger ui css", "GET", "/docs/swagger-ui.css", 200, "text/css; charset=utf-8", ".swagger-ui"},
		{"unknown asset", "GET", "/docs/missing.js", 404, "", ""},
		{"no listing of the embedded tree", "GET", "/docs/swaggerui/", 404, "", ""},
		{"wrong method", "POST", "/openapi.json", 405, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !h.Match(tc.path) {
				t.Fatalf("Match(%q) = false, want true", tc.path)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if got, want := rec.Code, tc.wantStatus; got != want {
				t.Fatalf("%s %s: status %d, want %d", tc.method, tc.path, got, want)
			}
			if tc.wantType != "" {
				if got, want := rec.Header().Get("Content-Type"), tc.wantType; got != want {
					t.Errorf("Content-Type %q, want %q", got, want)
				}
				if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("X-Content-Type-Options %q, want nosniff", got)
				}
			}
			if tc.wantBody != "" && !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body does not contain %q", tc.wantBody)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Errorf("HEAD answered a body of %d bytes", rec.Body.Len())
			}
			if tc.wantStatus == 405 && rec.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow %q, want \"GET, HEAD\"", rec.Header().Get("Allow"))
			}
		})
	}
}

func TestHandlerServesTheGeneratedDocuments(t *testing.T) {
	t.Parallel()
	for path, doc := range map[string][]byte{"/openapi.json": openapi.Document, "/asyncapi.json": asyncapi.Document} {
		rec := httptest.NewRecorder()
		apidocs.New().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if !bytes.Equal(rec.Body.Bytes(), doc) {
			t.Errorf("GET %s is not the generated document", path)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Errorf("GET %s is not JSON", path)
		}
		// The documents are data for other origins' tools: no page policy,
		// but the same caching as the explorer's files.
		if got := rec.Header().Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", path, got)
		}
		if rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", path)
		}
	}
}

// The explorer's page may load nothing from another origin: the policy
// allows this origin only, for scripts, styles and requests.
func TestExplorerPolicy(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	apidocs.New().ServeHTTP(rec, httptest.NewRequest("GET", "/docs/", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(rec.Body.String(), "http") {
		t.Errorf("the page names an absolute URL:\n%s", rec.Body.String())
	}
}

func TestConditionalGet(t *testing.T) {
	t.Parallel()
	h := apidocs.New()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/docs/swagger-ui.css", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/docs/swagger-ui.css", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got, want := rec.Code, http.StatusNotModified; got != want {
		t.Errorf("status %d with If-None-Match, want %d", got, want)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	h := apidocs.New()
	for _, p := range []string{"/stock", "/docsx", "/openapi.jsonx", "/asyncapi.jsonx", "/", "/cart/docs"} {
		if h.Match(p) {
			t.Errorf("Match(%q) = true, want false", p)
		}
	}
}
