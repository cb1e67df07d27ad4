package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/auth"
)

// ServeFixtures runs the fixture servers (`bench fixtures`): it writes their
// addresses as JSON to addrsPath once they serve, then serves until ctx ends
// (SIGTERM from the harness, or the harness died: see Pdeathsig).
func ServeFixtures(ctx context.Context, dir string, blobSize int64, addrsPath string) error {
	f, err := StartFixtures(ctx, dir, blobSize)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := json.Marshal(f.Addrs)
	if err != nil {
		return err
	}
	// Written then renamed, so that the harness never reads half a file.
	if err := os.WriteFile(addrsPath+".tmp", data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(addrsPath+".tmp", addrsPath); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// ServeSigner runs the bare token signer (`bench signer`), the floor of the
// token issuance benchmark: net/http, Basic credentials required but not
// checked, the scopes parsed and signed into a token with pkg/auth, the
// JSON answer of the token spec. No licence look-up, no rate limiting, no
// metrics, no logging: what is left is the cost of HTTP and the signature.
func ServeSigner(ctx context.Context, listen, keyPath string) error {
	key, err := auth.LoadSigningKey(keyPath, "")
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
				Issuer: benchIssuer, Subject: user, Audience: jwt.ClaimStrings{q.Get("service")},
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
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := httpx.NewServer(listen, h, httpx.DefaultTimeouts, slog.New(slog.DiscardHandler))
	return httpx.Serve(ctx, srv, ln, 5*time.Second)
}

// fixturesProc is the fixtures process seen from the harness.
type fixturesProc struct {
	*Proc
	Addrs FixtureAddrs
}

// startFixturesProc re-executes this binary as `bench fixtures`.
func startFixturesProc(ctx context.Context, self, dir string, blobSize int64) (*fixturesProc, error) {
	addrs := filepath.Join(dir, "fixtures.json")
	p, err := startProc("fixtures", self, []string{"fixtures", "-dir", filepath.Join(dir, "registry"),
		"-blob-size", fmt.Sprint(blobSize), "-addrs", addrs}, filepath.Join(dir, "fixtures.log"), nil, nil)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, err := os.ReadFile(addrs)
		if err == nil {
			fp := &fixturesProc{Proc: p}
			if err := json.Unmarshal(data, &fp.Addrs); err != nil {
				p.Stop()
				return nil, fmt.Errorf("fixtures: %s: %w", addrs, err)
			}
			return fp, nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("fixtures did not start: %s", p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// licenceStats asks the fixtures' licence API for its counts.
func (f *fixturesProc) licenceStats(ctx context.Context) (LicenceStats, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.Addrs.License+"/_stats", nil)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return LicenceStats{}, err
	}
	defer resp.Body.Close()
	var s LicenceStats
	return s, json.NewDecoder(resp.Body).Decode(&s)
}
