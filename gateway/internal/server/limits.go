package server

import (
	"context"
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

// bodyLimitKey marks a request whose body went over the limit, so that the
// error handler answers 413 instead of grpc-gateway's 400 for the cut body.
type bodyLimitKey struct{}

type bodyLimit struct {
	limit    int64
	exceeded bool
}

// capBody bounds r's body to max bytes: a body longer than max is cut there
// and the request marked, so that the error handler answers 413. It returns
// the request carrying the mark and the bounded body.
func capBody(w http.ResponseWriter, r *http.Request, max int64) (*http.Request, io.ReadCloser) {
	bl := &bodyLimit{limit: max}
	r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, bl))
	return r, &markingBody{ReadCloser: http.MaxBytesReader(w, r.Body, max), bl: bl}
}

func tooLarge(max int64) error {
	return apierr.Errorf(codes.ResourceExhausted, "request body is larger than %d bytes", max)
}

type markingBody struct {
	io.ReadCloser
	bl *bodyLimit
}

func (b *markingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.bl.exceeded = true
	}
	return n, err
}

// bodyTooLarge reports whether r's body went over its limit, and the limit.
func bodyTooLarge(r *http.Request) (int64, bool) {
	bl, _ := r.Context().Value(bodyLimitKey{}).(*bodyLimit)
	if bl == nil || !bl.exceeded {
		return 0, false
	}
	return bl.limit, true
}
