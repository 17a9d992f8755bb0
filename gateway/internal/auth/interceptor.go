package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	annotationsv1 "github.com/shopgateway/shop/gen/shop/annotations/v1"

	"github.com/shopgateway/shop/gateway/internal/apierr"
	"github.com/shopgateway/shop/gateway/internal/ratelimit"
	"github.com/shopgateway/shop/gateway/internal/reqinfo"
)

// Metadata keys the authorizer reads and answers with.
const (
	// AuthorizationKey carries the caller's "Bearer <token>"; sent at most
	// once (SingleMetadata).
	AuthorizationKey = "authorization"
	// ChallengeKey carries the RFC 6750 challenge of a 401 or 403.
	ChallengeKey = "www-authenticate"
	// RetryAfterKey carries the seconds to wait after a 429.
	RetryAfterKey = reqinfo.RetryAfterKey
	// RateLimitPolicyKey and RateLimitKey carry the IETF RateLimit fields
	// of a 429.
	RateLimitPolicyKey = "ratelimit-policy"
	RateLimitKey       = "ratelimit"
)

// ResponseHeaders are the authorizer's response metadata with the HTTP
// header each is answered as over REST.
var ResponseHeaders = map[string]string{
	ChallengeKey:       "WWW-Authenticate",
	RateLimitPolicyKey: "RateLimit-Policy",
	RateLimitKey:       "RateLimit",
}

// SingleMetadata are the metadata keys the authorizer reads that a call
// must not repeat: with two tokens, which one is the caller?
var SingleMetadata = []string{AuthorizationKey}

// realm names the protection space in challenges.
const realm = "shop"

// TokenVerifier verifies a bearer token. *Verifier implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*Identity, error)
}

// Limiter takes a token from a client's bucket. *ratelimit.Limiter
// implements it.
type Limiter interface {
	Allow(key string) ratelimit.Decision
}

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// Services are the proto services served; every method must declare
	// its (shop.annotations.v1.auth) policy.
	Services []protoreflect.ServiceDescriptor
	// Verifier verifies tokens. Nil turns authentication off: every call is
	// let through as anonymous (the -auth-disabled mode, for development).
	Verifier TokenVerifier
	// Limiter, when set, limits requests per client: the token's subject,
	// or the client address for anonymous calls.
	Limiter Limiter
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a direct gRPC caller's address. Empty trusts none.
	TrustedProxies []netip.Prefix
	// Open are full methods outside the API that anyone may call without a
	// token and without a rate limit: the gRPC health check, which load
	// balancers probe. Every other method without a policy is refused.
	Open []string
	// Logger receives denials at debug level. Required.
	Logger *slog.Logger
}

// Authorizer is the gateway's edge check of every RPC: authentication,
// rate limiting, then the RPC's policy.
type Authorizer struct {
	cfg   AuthorizerConfig
	rules map[string]*rule
	open  map[string]bool
}

// NewAuthorizer compiles the policies of cfg.Services.
func NewAuthorizer(cfg AuthorizerConfig) (*Authorizer, error) {
	if cfg.Logger == nil {
		return nil, errors.New("auth: no logger")
	}
	rules, err := compileRules(cfg.Services)
	if err != nil {
		return nil, err
	}
	open := map[string]bool{}
	for _, m := range cfg.Open {
		if rules[m] != nil {
			return nil, fmt.Errorf("auth: %s has a policy and cannot also be open", m)
		}
		open[m] = true
	}
	return &Authorizer{cfg: cfg, rules: rules, open: open}, nil
}

// Interceptor returns the unary interceptor that enforces the policies.
// On a denial the handler is not called.
func (a *Authorizer) Interceptor() grpc.UnaryServerInterceptor { return a.intercept }

func (a *Authorizer) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r := a.rules[info.FullMethod]
	if r == nil {
		if a.open[info.FullMethod] {
			return handler(ctx, req)
		}
		return nil, apierr.Errorf(codes.PermissionDenied, "no access policy for %s", info.FullMethod)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var (
		id      *Identity
		authErr error
	)
	given := len(md.Get(AuthorizationKey)) > 0
	if a.cfg.Verifier != nil && given {
		id, authErr = a.verify(ctx, md)
	}
	if a.cfg.Limiter != nil {
		key := "ip:" + a.clientIP(ctx, md)
		if id != nil {
			key = "sub:" + strconv.FormatInt(id.UserID, 10)
		}
		if d := a.cfg.Limiter.Allow(key); !d.OK {
			return nil, rateLimited(ctx, d)
		}
	}
	if a.cfg.Verifier == nil {
		return handler(ctx, req)
	}
	if authErr != nil {
		return nil, a.unauthenticated(ctx, info.FullMethod, authErr.Error(), true)
	}
	switch r.access {
	case annotationsv1.Access_ACCESS_PUBLIC:
	case annotationsv1.Access_ACCESS_OWNER:
		if id == nil {
			return nil, a.unauthenticated(ctx, info.FullMethod, "this call needs a bearer token", false)
		}
		if r.owner != nil {
			if err := a.own(ctx, r, id, req); err != nil {
				return nil, err
			}
		}
	case annotationsv1.Access_ACCESS_SCOPED:
		if id == nil {
			return nil, a.unauthenticated(ctx, info.FullMethod, "this call needs a bearer token", false)
		}
		if !id.HasAnyScope(r.scopes) {
			a.cfg.Logger.DebugContext(ctx, "auth: denied", slog.String("rpc", info.FullMethod), slog.Int64("user_id", id.UserID), slog.String("reason", "scope"))
			_ = grpc.SetHeader(ctx, metadata.Pairs(ChallengeKey,
				fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope", scope=%q`, realm, strings.Join(r.scopes, " "))))
			return nil, apierr.Errorf(codes.PermissionDenied, "this call needs one of the scopes: %s", strings.Join(r.scopes, ", "))
		}
	}
	if id != nil {
		ctx = reqinfo.WithCaller(ctx, id.caller)
	}
	return handler(ctx, req)
}

// verify takes the bearer token from md and verifies it.
func (a *Authorizer) verify(ctx context.Context, md metadata.MD) (*Identity, error) {
	vals := md.Get(AuthorizationKey)
	if len(vals) != 1 {
		return nil, &TokenError{Reason: "more than one Authorization header"}
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, &TokenError{Reason: `the Authorization header is not "Bearer <token>"`}
	}
	return a.cfg.Verifier.Verify(ctx, strings.TrimSpace(token))
}

// own fills the owner field from the caller when it is absent, and refuses
// a different owner unless the caller holds one of the rule's scopes.
func (a *Authorizer) own(ctx context.Context, r *rule, id *Identity, req any) error {
	msg, ok := req.(proto.Message)
	if !ok {
		return apierr.New(codes.Internal, "request is not a proto message")
	}
	m := msg.ProtoReflect()
	owner := m.Get(r.owner).Int()
	switch {
	case owner == 0:
		m.Set(r.owner, protoreflect.ValueOfInt64(id.UserID))
	case owner != id.UserID && !id.HasAnyScope(r.scopes):
		a.cfg.Logger.DebugContext(ctx, "auth: denied", slog.Int64("user_id", id.UserID), slog.Int64("owner", owner), slog.String("reason", "owner"))
		return apierr.Errorf(codes.PermissionDenied, "%s %d is not the caller's", r.owner.Name(), owner)
	}
	return nil
}

func (a *Authorizer) unauthenticated(ctx context.Context, method, msg string, tokenGiven bool) error {
	challenge := fmt.Sprintf("Bearer realm=%q", realm)
	if tokenGiven {
		challenge += fmt.Sprintf(`, error="invalid_token", error_description="%s"`, challengeText(msg))
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(ChallengeKey, challenge))
	a.cfg.Logger.DebugContext(ctx, "auth: unauthenticated", slog.String("rpc", method), slog.String("reason", msg))
	return apierr.New(codes.Unauthenticated, msg)
}

// challengeText keeps what RFC 6750 allows in error_description.
func challengeText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '\''
		}
	}
	return string(b)
}

// clientIP is the REST edge's resolved address, else the gRPC peer's.
func (a *Authorizer) clientIP(ctx context.Context, md metadata.MD) string {
	if ri := reqinfo.FromContext(ctx); ri != nil && ri.ClientIP != "" {
		return ri.ClientIP
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	return ratelimit.ClientIP(p.Addr.String(), md.Get("x-forwarded-for"), a.cfg.TrustedProxies)
}

// rateLimited is RESOURCE_EXHAUSTED with a RetryInfo detail, and the
// Retry-After and RateLimit headers.
func rateLimited(ctx context.Context, d ratelimit.Decision) error {
	secs := max(1, int(math.Ceil(d.RetryAfter.Seconds())))
	_ = grpc.SetHeader(ctx, metadata.Pairs(
		RetryAfterKey, strconv.Itoa(secs),
		RateLimitPolicyKey, fmt.Sprintf(`"client";q=%d;w=%d`, d.Limit, d.Window),
		RateLimitKey, fmt.Sprintf(`"client";r=0;t=%d`, secs),
	))
	return apierr.New(codes.ResourceExhausted, "rate limit exceeded; retry later").
		WithRetryDelay(time.Duration(secs) * time.Second)
}
