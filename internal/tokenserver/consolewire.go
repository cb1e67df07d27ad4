package tokenserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/tlsx"
	"github.com/acme/registry-gateway/internal/tokenserver/console"
	"github.com/acme/registry-gateway/pkg/auth"
)

// openConsole builds the web console on the admin API's database. It
// verifies customers with the licence source that verifies /token, throttles
// them with the same failed-login limiter, and mints the tokens of its
// reads of the gateway with the service's signing key.
func (s *Server) openConsole() (*console.Console, error) {
	o := console.Options{
		Config:   s.cfg.Console,
		DB:       s.adminDB,
		Licenses: s.licenses,
		Mint:     s.mint,
		// Refused customer sign-ins count with the refused logins of /token.
		LoginFailed: s.metrics.loginFailed,
		// The vendor's and the sign-in links' by method and reason.
		SignInFailed: s.metrics.consoleSignInFailed,
		Log:          s.log,
		ClientAddr:   s.clients.Of,
		Clock:        s.now,
	}
	if s.limiter != nil {
		o.Limiter = s.limiter
	}
	if ca := s.cfg.Console.RegistryCAFile; ca != "" {
		pool, err := tlsx.LoadCertPool(ca)
		if err != nil {
			return nil, fmt.Errorf("console.registry_ca_file: %w", err)
		}
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: tlsx.ClientTLSConfig(pool, nil), Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 8,
		}}
	}
	return console.New(o)
}

// mint signs a token for lic granting what it holds of scopes, as /token
// would for a login of its account; nothing is audited as issued, since no
// client receives it (the console reads the gateway with it).
func (s *Server) mint(_ context.Context, lic license.License, scopes []auth.ResourceActions) (string, error) {
	granted, catalog := Grant(scopes, lic)
	claims, _ := s.claims(lic, granted, catalog)
	return s.key.Sign(claims)
}

// withConsole serves the console under console.Prefix and the admin API
// everywhere else on admin.listen.
func withConsole(api, c http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, console.Prefix) {
			c.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == strings.TrimSuffix(console.Prefix, "/") {
			http.Redirect(w, r, console.Prefix, http.StatusMovedPermanently)
			return
		}
		api.ServeHTTP(w, r)
	})
}
