// Package apidocs serves the API's description and an explorer for it, both
// embedded in the binary so that they work offline and behind a firewall:
// GET /openapi.json is the OpenAPI 3 document generated from proto/, and
// GET /docs/ is Swagger UI reading it, where a person can read every
// operation, authorize with a bearer token and send requests. GET
// /asyncapi.json is the AsyncAPI 3 document of the Kafka events, also
// generated from proto/, where each event's ce_dataschema points.
//
// The Swagger UI files in swaggerui/ are a pinned release of the npm package
// swagger-ui-dist, copied by scripts/fetch-swagger-ui.sh.
package apidocs

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/shopgateway/shop/gen/asyncapi"
	"github.com/shopgateway/shop/gen/openapi"
)

// Paths served by the Handler.
const (
	// DocumentPath is the OpenAPI 3 document.
	DocumentPath = "/openapi.json"
	// AsyncAPIPath is the AsyncAPI 3 document of the events.
	AsyncAPIPath = "/asyncapi.json"
	// ExplorerPath is the explorer's page; its assets are below it.
	ExplorerPath = "/docs/"
)

//go:embed index.html docs.js docs.css swaggerui/swagger-ui-bundle.js swaggerui/swagger-ui.css swaggerui/favicon-32x32.png
var files embed.FS

// contentSecurityPolicy keeps the explorer to this origin: its scripts,
// styles and requests all come from the gateway. Swagger UI sets inline
// styles, hence 'unsafe-inline' for styles only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body, contentType, `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// Handler serves DocumentPath, ExplorerPath and the explorer's assets for
// GET and HEAD; Match says which paths are its.
type Handler struct {
	assets map[string]asset
}

// New returns the Handler of the embedded document and explorer.
func New() *Handler {
	h := &Handler{assets: map[string]asset{
		DocumentPath: newAsset(openapi.Document, "application/json"),
		AsyncAPIPath: newAsset(asyncapi.Document, "application/json"),
	}}
	types := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
		".png":  "image/png",
	}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		url := ExplorerPath + name
		if name == "index.html" {
			url = ExplorerPath
		}
		h.assets[url] = newAsset(body, types[path.Ext(name)])
		return nil
	})
	return h
}

// Match reports whether path is served by the Handler (as a page, an asset,
// or the redirect from "/docs" to "/docs/").
func (h *Handler) Match(p string) bool {
	return p == DocumentPath || p == AsyncAPIPath || p == strings.TrimSuffix(ExplorerPath, "/") || strings.HasPrefix(p, ExplorerPath)
}

// ServeHTTP serves one of the embedded files. Other methods than GET and HEAD
// get 405, unknown paths below ExplorerPath 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == strings.TrimSuffix(ExplorerPath, "/") {
		http.Redirect(w, r, ExplorerPath, http.StatusMovedPermanently)
		return
	}
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	if r.URL.Path != DocumentPath && r.URL.Path != AsyncAPIPath {
		hdr.Set("Content-Security-Policy", contentSecurityPolicy)
		hdr.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers HEAD, Range and If-None-Match (304); the zero
	// modification time leaves out Last-Modified.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
