package tokenserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/license/backends"
	"github.com/acme/registry-gateway/pkg/auth"
)

func passwordGrant(scope string, offline bool) url.Values {
	v := url.Values{
		"grant_type": {"password"}, "username": {aliceUser}, "password": {aliceToken},
		"service": {testService}, "client_id": {"containerd-client"},
	}
	if scope != "" {
		v.Set("scope", scope)
	}
	if offline {
		v.Set("access_type", "offline")
	}
	return v
}

func refreshGrant(rt, scope string) url.Values {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "service": {testService}, "client_id": {"containers/image"}}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

// The OAuth2 form: a password grant with access_type=offline answers a
// refresh token; the refresh grant answers new access tokens for its whole
// lifetime, rechecking the licence each time, so a revoked licence stops it
// at the next refresh.
func TestPostGrants(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil, inBubble)
		f.watch() // the file poller runs
		base := f.url

		resp := post(t, base, passwordGrant("repository:stable/app:pull repository:beta/app:pull", false))
		a := mustToken(t, resp)
		if a.Token != "" || a.RefreshToken != "" || a.TokenType != "Bearer" || string(a.ExpiresIn) != "300" {
			t.Errorf("answer %+v", a)
		}
		if a.Scope != "repository:stable/app:pull" {
			t.Errorf("scope = %q", a.Scope)
		}
		if c := f.verify(a.AccessToken); c.Subject != aliceUser || len(c.Access) != 1 {
			t.Errorf("claims %+v", c)
		}

		a = mustToken(t, post(t, base, passwordGrant("", true)))
		rt := a.RefreshToken
		if !strings.HasPrefix(rt, "rt1.") {
			t.Fatalf("refresh token %q", rt)
		}
		if strings.Contains(rt, aliceToken) || strings.Contains(decodeLoosely(rt), aliceToken) {
			t.Fatal("refresh token carries the API token readable")
		}

		// Days later (docker has long forgotten the password) it still works.
		f.clock.Advance(10 * 24 * time.Hour)
		a = mustToken(t, post(t, base, refreshGrant(rt, "repository:stable/app:pull")))
		if a.RefreshToken != rt {
			t.Error("refresh grant did not answer the same refresh token")
		}
		c := f.verify(a.AccessToken)
		if c.Subject != aliceUser || !c.Allows("repository", "stable/app", "pull") {
			t.Errorf("claims %+v", c)
		}
		// The username, if given, must be the token's.
		v := refreshGrant(rt, "")
		v.Set("username", aliceUser)
		mustToken(t, post(t, base, v))

		// Revoke: alice disappears from the licence file. Once the file is
		// reread and the cached licence has expired, the refresh fails.
		writeLicenses(t, f.licPath, defaultAccounts[1])
		f.pollStep()
		f.clock.Advance(backends.DefaultCacheTTL + time.Second)
		if resp := post(t, base, refreshGrant(rt, "")); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("refresh after the licence file dropped alice: status %d", resp.StatusCode)
		}
		e := decodeError(t, post(t, base, refreshGrant(rt, "")))
		if e.Error != "invalid_grant" || e.Errors[0].Code != "UNAUTHORIZED" {
			t.Errorf("revoked: %+v", e)
		}
	})
}

func TestRefreshTokenExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.RefreshTokenTTL = time.Hour })
	rt := aliceRefreshToken(t, f)
	f.clock.Advance(time.Hour - time.Second)
	mustToken(t, post(t, f.url, refreshGrant(rt, "")))
	f.clock.Advance(time.Second)
	if resp := post(t, f.url, refreshGrant(rt, "")); resp.StatusCode != 401 {
		t.Errorf("expired refresh token: status %d", resp.StatusCode)
	}
}

// The refresh token keeps no state in the process: a new server (a restart,
// another replica) with the same signing key opens it; a server with a new
// signing key does not, unless both share refresh_token_key_file.
func TestRefreshTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	rt := aliceRefreshToken(t, f)

	restarted, err := New(t.Context(), &f.cfg, Options{Clock: f.clock.Now, Logger: f.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	base := serve(t, restarted)
	mustToken(t, post(t, base, refreshGrant(rt, "repository:stable/app:pull")))

	// Signing key rotated: the derived key changes and old tokens fail.
	rotated := f.cfg
	rotated.SigningKey = filepath.Join(f.dir, "new.key")
	writeECKey(t, rotated.SigningKey)
	srv, err := New(t.Context(), &rotated, Options{Clock: f.clock.Now, Logger: f.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	if resp := post(t, serve(t, srv), refreshGrant(rt, "")); resp.StatusCode != 401 {
		t.Errorf("after key rotation: status %d, want 401", resp.StatusCode)
	}

	// With a shared refresh key file, replicas with different signing keys
	// open each other's refresh tokens.
	keyFile := filepath.Join(f.dir, "refresh.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.cfg.RefreshTokenKeyFile, rotated.RefreshTokenKeyFile = keyFile, keyFile
	one, err := New(t.Context(), &f.cfg, Options{Clock: f.clock.Now, Logger: f.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	two, err := New(t.Context(), &rotated, Options{Clock: f.clock.Now, Logger: f.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	rt = mustToken(t, post(t, serve(t, one), passwordGrant("", true))).RefreshToken
	mustToken(t, post(t, serve(t, two), refreshGrant(rt, "")))
}

// decodeLoosely base64url-decodes what follows the version prefix, to look
// for plaintext.
func decodeLoosely(rt string) string {
	_, rest, _ := strings.Cut(rt, ".")
	b, _ := base64.RawURLEncoding.DecodeString(rest)
	return string(b)
}

func TestRefreshSealer(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	s, err := newRefreshSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	claims := &refreshClaims{Subject: aliceUser, Token: aliceToken, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix(), ID: "j1", Service: testService}
	rt, err := s.seal(claims)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.open(rt, testService, now); err != nil || *got != *claims {
		t.Fatalf("open = %+v, %v", got, err)
	}
	// Two seals of the same claims differ (random nonce).
	if rt2, _ := s.seal(claims); rt2 == rt {
		t.Error("seal is deterministic")
	}

	other, _ := newRefreshSealer(append(make([]byte, 31), 1))
	flip := []byte(rt)
	flip[len(flip)-5] ^= 1
	for name, tc := range map[string]struct {
		sealer  *refreshSealer
		token   string
		service string
		now     time.Time
	}{
		"expired":        {s, rt, testService, now.Add(time.Hour)},
		"other service":  {s, rt, "other", now},
		"other key":      {other, rt, testService, now},
		"tampered":       {s, string(flip), testService, now},
		"no prefix":      {s, strings.TrimPrefix(rt, refreshPrefix), testService, now},
		"future version": {s, "rt2." + strings.TrimPrefix(rt, refreshPrefix), testService, now},
		"not base64":     {s, "rt1.!!!", testService, now},
		"too short":      {s, "rt1.AAAA", testService, now},
		"empty":          {s, "", testService, now},
		"too long":       {s, "rt1." + strings.Repeat("A", maxRefreshTokenLen), testService, now},
	} {
		c, err := tc.sealer.open(tc.token, tc.service, tc.now)
		if !errors.Is(err, errBadRefreshToken) || c != nil {
			t.Errorf("%s: %v, err = %v", name, c, err)
		}
		// Only a genuine token past its exp says whose it was.
		if e, ok := errors.AsType[*refreshExpiredError](err); ok != (name == "expired") || ok && e.cred != (license.Credentials{Username: aliceUser, Token: aliceToken}) {
			t.Errorf("%s: err %#v", name, err)
		}
	}
}

func TestLoadRefreshKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	raw := []byte("0123456789abcdef0123456789abcdef")
	for name, tc := range map[string]struct {
		content string
		want    []byte
	}{
		"hex":            {hex.EncodeToString(raw), raw},
		"hex, newline":   {"  " + hex.EncodeToString(raw) + "\n", raw},
		"raw":            {string(raw), raw},
		"short hex":      {"abcd", nil},
		"33 raw bytes":   {string(raw) + "x", nil},
		"64 chars ! hex": {strings.Repeat("zz", 32), nil},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := loadRefreshKey(p)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: no error", name)
			}
			continue
		}
		if err != nil || string(got) != string(tc.want) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
}

// The derived key depends on the signing key only.
func TestDeriveRefreshKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := writeECKey(t, filepath.Join(dir, "a.key"))
	b := writeECKey(t, filepath.Join(dir, "b.key"))
	ka, _ := auth.NewSigningKey(a, nil)
	kb, _ := auth.NewSigningKey(b, nil)
	a1, err1 := deriveRefreshKey(ka.Signer)
	a2, err2 := deriveRefreshKey(ka.Signer)
	b1, err3 := deriveRefreshKey(kb.Signer)
	if err1 != nil || err2 != nil || err3 != nil || len(a1) != 32 || string(a1) != string(a2) || string(a1) == string(b1) {
		t.Errorf("derive: %x %x %x (%v %v %v)", a1, a2, b1, err1, err2, err3)
	}
}

// A key rotation keeps refresh tokens valid: at each step of the runbook
// (publish the next private key, switch the signer, move the old key to
// previous_signing_keys) every replica opens what the replicas of the
// neighbouring steps sealed, and the JWKS lists exactly the keys of the
// step. Dropping the old key ends the tokens sealed under it.
func TestRefreshTokensSurviveRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	oldKey, nextKey := f.keyPath, filepath.Join(f.dir, "next.key")
	writeECKey(t, nextKey)
	step := func(signing string, publish, previous []string) *Server {
		t.Helper()
		cfg := f.cfg
		cfg.SigningKey, cfg.PublishKeys, cfg.PreviousSigningKeys = signing, publish, previous
		srv, err := New(t.Context(), &cfg, Options{Clock: f.clock.Now, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	kidOf := func(path string) string {
		k, err := auth.LoadSigningKey(path, "")
		if err != nil {
			t.Fatal(err)
		}
		return k.KeyID
	}
	oldKid, nextKid := kidOf(oldKey), kidOf(nextKey)

	steps := []struct {
		name string
		srv  *Server
		kids []string
	}{
		{"before", f.srv, []string{oldKid}},
		{"next published", step(oldKey, []string{nextKey}, nil), []string{oldKid, nextKid}},
		{"signer switched", step(nextKey, []string{oldKey}, nil), []string{nextKid, oldKid}},
		{"old key unpublished", step(nextKey, nil, []string{oldKey}), []string{nextKid}},
	}
	urls := make([]string, len(steps))
	sealed := make([]string, len(steps))
	for i, s := range steps {
		urls[i] = serve(t, s.srv)
		sealed[i] = mustToken(t, post(t, urls[i], passwordGrant("", true))).RefreshToken
		set, err := auth.ParseJWKS(s.srv.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		if len(set) != len(s.kids) {
			t.Errorf("%s: JWKS has %d keys, want %v", s.name, len(set), s.kids)
		}
		for _, kid := range s.kids {
			if set[kid] == nil {
				t.Errorf("%s: JWKS lacks %s", s.name, kid)
			}
		}
		if got := s.srv.KeyID(); got != s.kids[0] {
			t.Errorf("%s: signs with %s, want %s", s.name, got, s.kids[0])
		}
	}
	// During a roll, replicas of two neighbouring steps serve side by side;
	// a refresh token issued before the rotation works at every step.
	for i := range steps {
		for j := max(0, i-1); j <= min(len(steps)-1, i+1); j++ {
			if resp := post(t, urls[j], refreshGrant(sealed[i], "")); resp.StatusCode != 200 {
				t.Errorf("sealed at %q, opened at %q: status %d", steps[i].name, steps[j].name, resp.StatusCode)
			}
		}
		if resp := post(t, urls[len(urls)-1], refreshGrant(sealed[0], "")); resp.StatusCode != 200 {
			t.Errorf("pre-rotation refresh token after the rotation: status %d", resp.StatusCode)
		}
	}

	// The old key dropped for good (refresh_token_ttl later, or after a
	// leak): what it sealed no longer opens; what the new key sealed does.
	done := serve(t, step(nextKey, nil, nil))
	if resp := post(t, done, refreshGrant(sealed[0], "")); resp.StatusCode != 401 {
		t.Errorf("old key dropped: status %d, want 401", resp.StatusCode)
	}
	mustToken(t, post(t, done, refreshGrant(sealed[3], "")))

	// A private key the token service cannot use says why.
	p384 := filepath.Join(f.dir, "p384.key")
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	writeKeyPEM(t, p384, k384)
	cfg384 := f.cfg
	cfg384.PublishKeys = []string{p384}
	if _, err := New(t.Context(), &cfg384, Options{Logger: discardLogger()}); err == nil || !strings.Contains(err.Error(), "publish_keys[0]") || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("P-384 key in publish_keys: %v", err)
	}

	// A previous signing key must be a private key.
	pub := filepath.Join(f.dir, "next.crt")
	k, _ := auth.LoadSigningKey(nextKey, "")
	writeCert(t, pub, k.Signer)
	cfg := f.cfg
	cfg.PreviousSigningKeys = []string{pub, ""}
	if _, err := New(t.Context(), &cfg, Options{Logger: discardLogger()}); err == nil ||
		!strings.Contains(err.Error(), "previous_signing_keys[0]") || !strings.Contains(err.Error(), "previous_signing_keys[1]: empty path") {
		t.Errorf("public key as previous signing key: %v", err)
	}
}
