package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shopgateway/shop/gateway/devkeys"
	"github.com/shopgateway/shop/gateway/internal/app"
)

// runAuth measures the REST path (GET /stock/1, a public RPC) of a gateway
// with authentication off against the same gateway with authentication on,
// the client sending one token over and over (verified once, then served
// from the cache), and an owner RPC (GET /cart, user_id filled from the
// token) with auth on; interleaved rounds, ratios against auth off.
func runAuth(ctx context.Context, upURL string, client *http.Client, c, rounds int, d time.Duration, logs *gatewayLogs) error {
	dir, err := os.MkdirTemp("", "gwbench-auth-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	jwks, token, err := benchToken(dir, "")
	if err != nil {
		return err
	}
	log, err := logs.logger(true)
	if err != nil {
		return err
	}
	offAddr, _, stopOff, err := startGateway(ctx, app.Config{}, upURL, log)
	if err != nil {
		return err
	}
	defer stopOff()
	onAddr, _, stopOn, err := startGateway(ctx, app.Config{Auth: app.AuthConfig{JWKS: jwks, Issuer: benchIssuer, Audience: []string{benchIssuer}}}, upURL, log)
	if err != nil {
		return err
	}
	defer stopOn()
	withToken := func(u string) func(ctx context.Context) error {
		return func(ctx context.Context) error { return send(ctx, client, http.MethodGet, u, "", "Bearer "+token) }
	}
	const base = "auth off, GET /stock/1 (baseline)"
	targets := []target{
		{name: base, do: func(ctx context.Context) error { return get(ctx, client, "http://"+offAddr+"/stock/1") }},
		{name: "auth on, GET /stock/1, no token", base: base, do: func(ctx context.Context) error { return get(ctx, client, "http://"+onAddr+"/stock/1") }},
		{name: "auth on, GET /stock/1, cached token", base: base, do: withToken("http://" + onAddr + "/stock/1")},
		{name: "auth on, GET /cart (owner), cached token", base: base, do: withToken("http://" + onAddr + "/cart")},
	}
	all := measureAll(targets, c, rounds, d)
	fmt.Printf("REST through the gateway, auth off vs on (RS256 token, cached after its first verification), %d clients, %d rounds of %s, GOMAXPROCS=%d, median per target\n\n",
		c, rounds, d, goMaxProcs())
	printTable(targets, all)
	return nil
}

// benchIssuer is the iss and aud of the benchmark's tokens.
const benchIssuer = "bench"

// benchToken writes a JWKS file with a new RS256 key into dir and returns
// its path and a token for subject 7 with scope (space-separated; empty
// for none), valid for an hour.
func benchToken(dir, scope string) (jwks, token string, err error) {
	key, err := devkeys.Generate("RS256", "bench")
	if err != nil {
		return "", "", err
	}
	jwks = filepath.Join(dir, "jwks.json")
	if err := devkeys.WriteJWKS(jwks, key); err != nil {
		return "", "", err
	}
	now := time.Now()
	token, err = key.Token(devkeys.Claims{Subject: "7", Scope: scope, Issuer: benchIssuer, Audience: benchIssuer, IssuedAt: now, Expiry: now.Add(time.Hour)})
	return jwks, token, err
}
