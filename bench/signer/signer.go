// Package signer is the floor of the token issuance benchmark, the "bare"
// contender (`bench signer`): net/http, Basic credentials required but not
// checked, the scopes parsed and signed into a token with pkg/auth, the
// JSON answer of the token spec. No licence look-up, no rate limiting, no
// metrics, no logging: what is left is the cost of HTTP and the signature.
package signer

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// Serve loads the key at keyPath and serves Handler on listen until ctx
// ends.
func Serve(ctx context.Context, listen, keyPath string) error {
	key, err := auth.LoadSigningKey(keyPath, "")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := httpx.NewServer(listen, Handler(key), httpx.DefaultTimeouts, slog.New(slog.DiscardHandler))
	return httpx.Serve(ctx, srv, ln, 5*time.Second)
}

// Handler answers GET /token with a token for the requested scopes, signed
// with key.
func Handler(key *auth.SigningKey) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		if !ok || r.URL.Path != "/token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		q := r.URL.Query()
		access, err := auth.ParseScopes(q["scope"])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		tok, err := key.Sign(&auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: fixtures.Issuer, Subject: user, Audience: jwt.ClaimStrings{q.Get("service")},
				ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), NotBefore: jwt.NewNumericDate(now),
				IssuedAt: jwt.NewNumericDate(now), ID: auth.NewTokenID(),
			},
			Access: access,
		})
		if err != nil {
			http.Error(w, "sign", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339),
		})
	})
}
