package tokencli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/pkg/auth"
)

// t0 is the fake clock of every test.
var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// result is what a command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs a command with a fixed clock, no colour and the given stdin
// and environment.
func runCLI(t *testing.T, stdin string, environ map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		now:    func() time.Time { return t0 },
		client: &http.Client{Timeout: 5 * time.Second},
		getenv: func(k string) string { return environ[k] },

		accountsConfig: loadAccounts,
	}
	code := e.run(context.Background(), args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// testKey makes a signing key (and its files) in a temp dir.
func testKey(t *testing.T, rsa bool) (*auth.SigningKey, string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := Keygen(KeygenOptions{Dir: dir, RSA: rsa, Now: func() time.Time { return t0 }}); err != nil {
		t.Fatal(err)
	}
	k, err := auth.LoadSigningKey(dir+"/"+KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	return k, dir
}

// claims are the claims of a typical pull token, issued at t0-1m for 5m.
func claims(issued time.Time, lifetime time.Duration, access ...auth.ResourceActions) *auth.Claims {
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "acme-token-service",
			Subject:   "alice@example.com",
			Audience:  jwt.ClaimStrings{"registry.example.com"},
			IssuedAt:  jwt.NewNumericDate(issued),
			NotBefore: jwt.NewNumericDate(issued),
			ExpiresAt: jwt.NewNumericDate(issued.Add(lifetime)),
			ID:        "jti-1",
		},
		Access: access,
	}
}

func pull(name string) auth.ResourceActions {
	return auth.ResourceActions{Type: "repository", Name: name, Actions: []string{"pull"}}
}

func sign(t *testing.T, k *auth.SigningKey, c *auth.Claims) string {
	t.Helper()
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustContain(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// loadAccounts reads the licenses.sql section of a token service
// configuration, as tokenserver.AccountsConfig does but without the
// service's other checks: this package does not import the service, and
// cmd/tokenserver's tests run the accounts commands with the real loader.
func loadAccounts(path string) (*accounts.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Licenses struct {
			SQL *accounts.Config `yaml:"sql"`
		} `yaml:"licenses"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc.Licenses.SQL != nil {
		doc.Licenses.SQL.SetDefaults()
	}
	return doc.Licenses.SQL, nil
}
