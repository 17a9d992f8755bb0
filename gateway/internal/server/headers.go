package server

import (
	"context"
	"net/http"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Cache-Control values of REST answers. Anything of a user's (carts,
// orders), every error and the health answers are never stored; the
// public reads (stock) may be stored but must be revalidated before reuse,
// since a stock level changes at any moment.
const (
	cacheNever      = "no-store"
	cacheRevalidate = "no-cache"
)

// secureHeaders puts the headers every REST answer carries on the
// response before next writes it: nosniff (a browser never guesses a JSON
// answer to be HTML) and Cache-Control no-store, which handlers of public
// reads and the API docs replace with their own.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", cacheNever)
		next.ServeHTTP(w, r)
	})
}

// singleHeaders are the request headers that must be sent at most once:
// with two values, one layer could read the first and another the last
// (the body's media type, the key a retry is matched on, the token, the
// deadline), so an ambiguous request is refused rather than guessed at.
var singleHeaders = []string{"Content-Type", "Idempotency-Key", "Authorization", grpcTimeoutHeader}

// singleMetadata are the gRPC metadata keys that must appear at most once,
// for the same reason: the server's own, and Config.SingleMetadata.
var singleMetadata = []string{reqinfo.IdempotencyKey}

// checkSingleHeaders refuses a request that repeats one of singleHeaders.
func checkSingleHeaders(h http.Header) error {
	var vs []apierr.FieldViolation
	for _, name := range singleHeaders {
		if len(h[name]) > 1 {
			vs = append(vs, apierr.FieldViolation{Field: name, Description: "must be sent at most once"})
		}
	}
	return repeated(vs)
}

// repeated is the INVALID_ARGUMENT of headers or metadata sent more than
// once, or nil when vs is empty.
func repeated(vs []apierr.FieldViolation) error {
	if len(vs) == 0 {
		return nil
	}
	msg := "header " + vs[0].Field + " sent more than once"
	if len(vs) > 1 {
		msg = "headers sent more than once"
	}
	return apierr.New(codes.InvalidArgument, msg).WithViolations(vs...)
}

// singleMetadataInterceptor refuses a call that repeats one of
// singleMetadata with INVALID_ARGUMENT. Through the REST mux these are the
// headers checkSingleHeaders has already checked.
func singleMetadataInterceptor(more []string) grpc.UnaryServerInterceptor {
	keys := append(slices.Clip(singleMetadata), more...)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		var vs []apierr.FieldViolation
		for _, key := range keys {
			if len(md.Get(key)) > 1 {
				vs = append(vs, apierr.FieldViolation{Field: key, Description: "must be sent at most once"})
			}
		}
		if err := repeated(vs); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}
