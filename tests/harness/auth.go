package harness

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shopgateway/shop/gateway/devkeys"
)

// The issuer and audience every harness gateway requires, and the scopes of
// the shop's policy.
const (
	TokenIssuer   = "https://harness.shop.test/issuer"
	TokenAudience = "shop-gateway-test"
	ScopeAdmin    = "shop:admin"
	ScopeService  = "shop:service"
	// AdminUserID is the subject of the stack's default (admin) token.
	AdminUserID = 1
)

var (
	signerOnce sync.Once
	signer     *devkeys.Signer
	signerErr  error
)

// Signer returns the signing key of the harness's gateways, made once per
// test process; its public key is in every stack's JWKS.
func Signer(tb testing.TB) *devkeys.Signer {
	tb.Helper()
	signerOnce.Do(func() { signer, signerErr = devkeys.Generate("RS256", "harness-1") })
	if signerErr != nil {
		tb.Fatalf("harness: signing key: %v", signerErr)
	}
	return signer
}

// Claims returns good claims for user sub with scope (space-separated),
// valid for six hours, with the harness's issuer and audience.
func Claims(sub int64, scope string) devkeys.Claims {
	now := time.Now()
	return devkeys.Claims{
		Subject: strconv.FormatInt(sub, 10), Scope: scope,
		Issuer: TokenIssuer, Audience: TokenAudience,
		IssuedAt: now, Expiry: now.Add(6 * time.Hour),
	}
}

// Sign signs claims with the harness's key.
func Sign(tb testing.TB, c devkeys.Claims) string {
	tb.Helper()
	tok, err := Signer(tb).Token(c)
	if err != nil {
		tb.Fatalf("harness: signing a token: %v", err)
	}
	return tok
}

// Token is a good token for user sub with scope.
func (s *Stack) Token(tb testing.TB, sub int64, scope string) string {
	tb.Helper()
	return Sign(tb, Claims(sub, scope))
}

// AdminToken is the stack's default token (user AdminUserID, shop:admin):
// Do and GRPCConn send it unless told otherwise.
func (s *Stack) AdminToken(tb testing.TB) string {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adminToken == "" {
		s.adminToken = Sign(tb, Claims(AdminUserID, ScopeAdmin))
	}
	return s.adminToken
}

// JWKSPath is the stack's JWKS file, the gateway's -auth-jwks. The gateway
// re-reads it when it changes: rewrite it (devkeys.WriteJWKS) to rotate keys.
func (s *Stack) JWKSPath() string { return s.env.jwksPath() }

func (e env) jwksPath() string { return filepath.Join(e.dir, "jwks.json") }

// writeJWKS publishes the harness's key in the environment's JWKS file.
func (e env) writeJWKS() {
	e.tb.Helper()
	if err := devkeys.WriteJWKS(e.jwksPath(), Signer(e.tb)); err != nil {
		e.tb.Fatalf("harness: writing the JWKS: %v", err)
	}
}

// authArgs are the gateway flags that make it verify the harness's tokens
// (-auth-disabled when disabled), or none for a gateway that predates them,
// and sign its service calls with the environment's service key.
func (e env) authArgs(disabled bool) []string {
	var args []string
	if gatewayHasFlag(e.gatewayBin, "service-signing-key") {
		args = []string{"-service-signing-key", e.serviceKeyPath(nameGateway)}
	}
	switch {
	case !gatewayHasFlag(e.gatewayBin, "auth-jwks"):
		return args
	case disabled:
		return append(args, "-auth-disabled")
	}
	return append(args, "-auth-jwks", e.jwksPath(), "-auth-issuer", TokenIssuer, "-auth-audience", TokenAudience)
}

// ServiceSigningKeyPath is the gateway's identity key (its
// -service-signing-key), the private JWK whose public half the services trust.
func (e env) ServiceSigningKeyPath() string { return e.serviceKeyPath(nameGateway) }

// Identity keys behind the gateway: the gateway's and service B's private
// keys and public JWKS files in the environment's directory.
func (e env) serviceKeyPath(signer string) string {
	return filepath.Join(e.dir, signer+"-signing-key.json")
}

func (e env) serviceJWKSPath(signer string) string {
	return filepath.Join(e.dir, signer+"-signing.jwks.json")
}

// gatewayIssuer is the gateway's name in its identity assertions (its
// -service-issuer default), which the services trust for users.
const gatewayIssuer = "shop-gateway"

// writeServiceKeys makes the identity keys of the gateway and of service B.
func (e env) writeServiceKeys() {
	e.tb.Helper()
	for _, signer := range []string{nameGateway, nameServiceB} {
		k, err := devkeys.Generate("EdDSA", "harness-"+signer)
		if err == nil {
			err = k.Save(e.serviceKeyPath(signer))
		}
		if err == nil {
			err = devkeys.WriteJWKS(e.serviceJWKSPath(signer), k)
		}
		if err != nil {
			e.tb.Fatalf("harness: writing the %s identity key: %v", signer, err)
		}
	}
}

// identityEnv is what a service needs to trust the gateway and B, and (B)
// to sign its own calls.
func (e env) identityEnv() []string {
	return []string{
		"IDENTITY_KEYS=shop-gateway=" + e.serviceJWKSPath(nameGateway) + ",service_b=" + e.serviceJWKSPath(nameServiceB),
		"IDENTITY_SIGNING_KEY=" + e.serviceKeyPath(nameServiceB),
	}
}

// ServiceHeader is an identity header (name, value) that the stack's
// services accept, for a test that calls a service directly: for user sub
// (0: the gateway itself) with scope, for service (service_a or service_b).
func (e env) ServiceHeader(service string, sub int64, scope string) (string, string) {
	e.tb.Helper()
	s, err := devkeys.Load(e.serviceKeyPath(nameGateway))
	if err != nil {
		e.tb.Fatalf("harness: %v", err)
	}
	subject := "svc:" + gatewayIssuer
	if sub != 0 {
		subject = strconv.FormatInt(sub, 10)
	}
	now := time.Now()
	tok, err := s.Token(devkeys.Claims{
		Subject: subject, Scope: scope, Issuer: gatewayIssuer, Audience: service,
		IssuedAt: now, Expiry: now.Add(10 * time.Minute),
	})
	if err != nil {
		e.tb.Fatalf("harness: %v", err)
	}
	return "X-Identity-Assertion", tok
}

// Bearer is the Authorization header value of a token.
func Bearer(token string) string { return "Bearer " + token }

type noTokenKey struct{}

// NoToken marks a gRPC call's context so that GRPCConn sends no default
// token (the call carries only the authorization metadata the test set).
func NoToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, noTokenKey{}, true)
}

// WithToken returns ctx carrying token as the call's authorization
// metadata, in place of the default one.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", Bearer(token))
}

// defaultToken is the GRPCConn interceptor that adds the stack's admin
// token to calls that carry no authorization of their own.
func defaultToken(admin string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		if len(md.Get("authorization")) == 0 && ctx.Value(noTokenKey{}) == nil {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", Bearer(admin))
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
