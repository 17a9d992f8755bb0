package server

import (
	"context"
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"

	"github.com/shopgateway/shop/gateway/internal/apierr"
)

// accessTokenParam is the query parameter that may carry the bearer token
// (RFC 6750 §2.3) of a browser's EventSource, which cannot send an
// Authorization header.
const accessTokenParam = "access_token"

// queryTokenKey marks a request whose access_token parameter was refused.
type queryTokenKey struct{}

// queryToken takes the access_token query parameter off every REST
// request before anything (tracing, the access log, grpc-gateway's query
// parsing) sees the URL, so that the token is never recorded nor echoed.
// It is accepted only on a GET of a server-streaming route that Accepts
// text/event-stream, sent once, non-empty and without an Authorization
// header: it then becomes that request's Authorization header. Anywhere
// else the request is marked refused (queryTokenRefused answers 400 once
// the request is logged).
func queryToken(next http.Handler, routes []restRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		q, perr := url.ParseQuery(r.URL.RawQuery)
		toks, sent := q[accessTokenParam]
		if !sent && perr == nil {
			next.ServeHTTP(w, r)
			return
		}
		stream := r.Method == http.MethodGet && isStreamRoute(routes, r.Method, r.URL.Path)
		if stream { // also on a refusal (streamEdge sets it on the others)
			w.Header().Set("Referrer-Policy", noReferrer)
		}
		delete(q, accessTokenParam)
		u := *r.URL
		u.RawQuery = q.Encode()
		r = r.Clone(r.Context())
		r.URL = &u
		r.RequestURI = u.RequestURI()
		var refused error
		switch {
		case perr != nil:
			// A malformed query: what it carries cannot be told apart
			// safely, so none of it is passed on.
			u.RawQuery, r.RequestURI = "", u.Path
			refused = apierr.New(codes.InvalidArgument, "the query string is malformed")
		case !stream || !acceptsEventStream(r.Header):
			refused = badQueryToken("is accepted only by the event streams (GET /cart/events, /order/events, /stock/events) with Accept: text/event-stream; send the token in the Authorization header")
		case len(toks) != 1:
			refused = badQueryToken("must be sent at most once")
		case toks[0] == "":
			refused = badQueryToken("is empty")
		case len(r.Header.Values("Authorization")) > 0:
			refused = badQueryToken("send the token either in the Authorization header or as access_token, not both")
		default:
			r.Header.Set("Authorization", "Bearer "+toks[0])
		}
		if refused != nil {
			r = r.WithContext(context.WithValue(r.Context(), queryTokenKey{}, refused))
		}
		next.ServeHTTP(w, r)
	})
}

func badQueryToken(why string) error {
	return apierr.New(codes.InvalidArgument, "query parameter access_token refused: "+why).
		WithViolations(apierr.FieldViolation{Field: accessTokenParam, Description: why})
}

// queryTokenRefused is the error of a request whose access_token
// parameter queryToken refused, or nil.
func queryTokenRefused(ctx context.Context) error {
	err, _ := ctx.Value(queryTokenKey{}).(error)
	return err
}
