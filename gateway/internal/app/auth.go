package app

import (
	"context"
	"fmt"
	"log/slog"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shopgateway/shop/gateway/internal/auth"
	"github.com/shopgateway/shop/gateway/internal/ratelimit"
)

// newAuthorizer builds the token verifier (unless auth is disabled), the
// per-client rate limiter (when a rate is set) and the authorizer.
func (g *Gateway) newAuthorizer(ctx context.Context, cfg Config, log *slog.Logger) (*auth.Authorizer, error) {
	acfg := auth.AuthorizerConfig{
		Services:       Services(),
		TrustedProxies: cfg.TrustedProxies,
		Open:           []string{healthpb.Health_Check_FullMethodName},
		Logger:         log,
	}
	if cfg.Auth.Disabled {
		log.Warn("authentication is DISABLED (-auth-disabled): every caller may call every RPC; never run like this where the gateway is reachable by others")
	} else {
		v, err := auth.NewVerifier(ctx, auth.Config{
			JWKS:            cfg.Auth.JWKS,
			Issuer:          cfg.Auth.Issuer,
			Audience:        cfg.Auth.Audience,
			Leeway:          cfg.Auth.Leeway,
			RefreshInterval: cfg.Auth.RefreshInterval,
		}, log)
		if err != nil {
			return nil, err
		}
		g.closers = append(g.closers, v.Close)
		acfg.Verifier = v
		if cfg.Auth.Issuer == "" || len(cfg.Auth.Audience) == 0 {
			log.Warn("auth: no -auth-issuer or -auth-audience: tokens of any issuer or audience signed by these keys are accepted")
		}
	}
	lim, err := ratelimit.New(ratelimit.Config{Rate: cfg.RateLimit, Burst: cfg.RateBurst})
	if err != nil {
		return nil, fmt.Errorf("rate limit: %w", err)
	}
	if lim != nil {
		acfg.Limiter = lim
	}
	return auth.NewAuthorizer(acfg)
}
