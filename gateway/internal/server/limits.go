package server

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"sort"

	"github.com/rs/cors"
	"google.golang.org/grpc/codes"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// corsHeaders are the request headers a browser may send cross-origin.
var corsHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "Grpc-Timeout", "X-Request-Id", "Traceparent", "Tracestate", "Last-Event-Id"}

// corsExposed are the response headers a browser script may read.
var corsExposed = []string{"X-Request-Id", "Traceparent", "X-Cart-Source", "Idempotency-Replayed", "Retry-After", "RateLimit", "RateLimit-Policy", "WWW-Authenticate"}

// newCORS answers preflights for every route (rs/cors) and adds the CORS
// headers for the allowed origins; another origin gets no allow header.
// Credentials (cookies) are not allowed: the API takes bearer tokens.
func newCORS(origins []string, routes []restRoute) *cors.Cors {
	methods := []string{http.MethodHead}
	for _, rt := range routes {
		if !slices.Contains(methods, rt.method) {
			methods = append(methods, rt.method)
		}
	}
	sort.Strings(methods)
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: methods,
		AllowedHeaders: corsHeaders,
		ExposedHeaders: corsExposed,
		MaxAge:         600,
	})
}

// requestBody is a REST request's body as the HTTP edge hands it to the
// mux: bounded to the size limit, and the one place that keeps what went
// wrong with it for the error handler, which answers with that instead of
// grpc-gateway's wrapping of the error text: over the limit (413), or
// rejected by the decoder (err: its field violations, 400).
type requestBody struct {
	io.ReadCloser
	limit    int64 // 0: no limit
	exceeded bool
	err      error
}

// newRequestBody wraps r's body, bounded to max bytes when max > 0.
func newRequestBody(w http.ResponseWriter, r *http.Request, max int64) *requestBody {
	b := &requestBody{ReadCloser: r.Body}
	if max > 0 {
		b.ReadCloser, b.limit = http.MaxBytesReader(w, r.Body, max), max
	}
	return b
}

func (b *requestBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.exceeded = true
	}
	return n, err
}

func tooLarge(max int64) error {
	return apierr.Errorf(codes.ResourceExhausted, "request body is larger than %d bytes", max)
}

// bodyTooLarge reports whether r's body went over its limit, and the limit.
func bodyTooLarge(r *http.Request) (int64, bool) {
	if b, ok := r.Body.(*requestBody); ok && b.exceeded {
		return b.limit, true
	}
	return 0, false
}
