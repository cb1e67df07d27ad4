package tokencli

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

func TestInspectGolden(t *testing.T) {
	t.Parallel()
	key, dir := testKey(t, false)
	tok := sign(t, key, claims(t0.Add(-time.Minute), 5*time.Minute, pull("stable/hello"), auth.ResourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}))

	r := runCLI(t, "", nil, "inspect", tok, "--key", filepath.Join(dir, PubFile))
	if r.code != 0 {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	want := strings.ReplaceAll(`Header
  alg  ES256
  kid  KID
  typ  JWT

Claims
  aud  ["registry.example.com"]
  exp  2026-11-29 10:04:00 UTC (in 4m)
  iat  2026-11-29 09:59:00 UTC (1m ago)
  iss  acme-token-service
  jti  jti-1
  nbf  2026-11-29 09:59:00 UTC (1m ago)
  sub  alice@example.com

Validity
  status    valid, expires in 4m
  lifetime  5m

Access
  TYPE        NAME          ACTIONS  CHANNEL
  repository  stable/hello  pull     stable
  registry    catalog       *        -

Signature
  OK signature verified with key KID from key DIR/token.pub; issuer and audience were taken from the token (pass --issuer and --audience to check them)
`, "KID", key.KeyID)
	want = strings.ReplaceAll(want, "DIR", dir)
	if r.stdout != want {
		t.Errorf("output:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestInspect(t *testing.T) {
	t.Parallel()
	key, dir := testKey(t, false)
	other, otherDir := testKey(t, false)
	rsaKey, rsaDir := testKey(t, true)
	pub := filepath.Join(dir, PubFile)

	valid := sign(t, key, claims(t0.Add(-time.Minute), 5*time.Minute, pull("stable/hello")))
	expired := sign(t, key, claims(t0.Add(-10*time.Minute), 5*time.Minute, pull("stable/hello")))
	notYet := sign(t, key, claims(t0.Add(10*time.Minute), 5*time.Minute))
	wrongKey := sign(t, other, claims(t0.Add(-time.Minute), 5*time.Minute))
	rsaTok := sign(t, rsaKey, claims(t0.Add(-time.Minute), 5*time.Minute))

	// Tampered: the payload now grants beta, the signature is the old one.
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "stable/hello", "beta/hello", 1)))
	tampered := strings.Join(parts, ".")

	// alg none with the right kid: refused whatever the key.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + key.KeyID + `"}`))
	none := hdr + "." + parts[1] + "."

	// Token-endpoint answer with a fractional exp and no aud.
	odd := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x","exp":1900000000.5}`)) + ".c2ln"

	// A JWKS served over HTTP, as the token service publishes it.
	jwks, _ := os.ReadFile(filepath.Join(dir, JWKSFile))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(jwks)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "valid with public key", args: []string{valid, "--key", pub}, stdout: []string{"valid, expires in 4m", "OK signature verified"}},
		{name: "valid with private key file", args: []string{valid, "--key", filepath.Join(dir, KeyFile)}, stdout: []string{"OK signature verified"}},
		{name: "valid with certificate", args: []string{valid, "--key", filepath.Join(dir, CertFile)}, stdout: []string{"OK signature verified"}},
		{name: "valid with JWKS file", args: []string{valid, "--jwks", filepath.Join(dir, JWKSFile)}, stdout: []string{"OK signature verified"}},
		{name: "valid with JWKS URL", args: []string{"--jwks", srv.URL + "/jwks.json", valid}, stdout: []string{"OK signature verified", "from JWKS " + srv.URL}},
		{name: "issuer and audience pinned", args: []string{valid, "--key", pub, "--issuer", "acme-token-service", "--audience", "registry.example.com"}, stdout: []string{"issuer and audience match"}},
		{name: "issuer pinned", args: []string{valid, "--key", pub, "--issuer", "acme-token-service"}, stdout: []string{`issuer "acme-token-service" matches, the audience was taken from the token (pass --audience to check it)`}},
		{name: "RSA token", args: []string{rsaTok, "--key", filepath.Join(rsaDir, PubFile)}, stdout: []string{"alg  RS256", "OK signature verified"}},
		{name: "unverified", args: []string{valid}, stdout: []string{"signature not checked: pass --jwks"}},
		{name: "stdin dash with token answer", stdin: `{"token":"` + valid + `","access_token":"` + valid + `","expires_in":300}`, args: []string{"-", "--key", pub}, stdout: []string{"OK signature verified"}},
		{name: "stdin without argument, bearer header", stdin: "Authorization: Bearer " + valid + "\n", args: nil, stdout: []string{"stable/hello"}},

		{name: "expired", args: []string{expired, "--key", pub}, code: 1, stdout: []string{"EXPIRED 5m ago", "FAILED (expired) the token expired 5m ago (at 2026-11-29 09:55:00 UTC)"}},
		{name: "expired unverified still fails", args: []string{expired}, code: 1, stdout: []string{"EXPIRED 5m ago"}},
		{name: "expired within leeway", args: []string{expired, "--key", pub, "--leeway", "10m"}, code: 1, stdout: []string{"EXPIRED", "OK signature verified"}},
		{name: "not yet valid", args: []string{notYet, "--key", pub}, code: 1, stdout: []string{"NOT YET VALID, starts in 10m", "FAILED (not_yet_valid)", "clock is ahead"}},
		{name: "tampered", args: []string{tampered, "--key", pub}, code: 1, stdout: []string{"beta/hello", "FAILED (signature) the signature does not match: the token was changed after it was signed (tampered)"}},
		{name: "wrong key", args: []string{wrongKey, "--key", pub}, code: 1, stdout: []string{"FAILED (unknown_key) no trusted key has kid " + other.KeyID, "signed by a different key", "trusted kids: " + key.KeyID}},
		{name: "wrong JWKS", args: []string{valid, "--jwks", filepath.Join(otherDir, JWKSFile)}, code: 1, stdout: []string{"no trusted key has kid " + key.KeyID}},
		{name: "alg none", args: []string{none, "--key", pub}, code: 1, stdout: []string{"FAILED (", "none"}},
		{name: "wrong issuer", args: []string{valid, "--key", pub, "--issuer", "someone-else"}, code: 1, stdout: []string{`issued by "acme-token-service", not by "someone-else"`}},
		{name: "wrong audience", args: []string{valid, "--key", pub, "--audience", "other.example.com"}, code: 1, stdout: []string{`not for the service "other.example.com"`}},
		{name: "JWKS URL down", args: []string{valid, "--jwks", srv.URL + "/missing"}, code: 1, stdout: []string{"FAILED (key_source) could not read the JWKS", "404"}},
		{name: "key file missing", args: []string{valid, "--key", filepath.Join(dir, "nope.pem")}, code: 1, stdout: []string{"FAILED (key_source) could not read the key"}},
		{name: "odd claims", args: []string{odd}, code: 1, stdout: []string{"exp is 1900000000.5, not a whole number", "no aud claim", "neither kid nor x5c"}},

		{name: "not a JWT", args: []string{"abc.def"}, code: 2, stderr: []string{"not a JWT: want 3 dot-separated parts, found 2"}},
		{name: "bad base64", args: []string{"e30.b!.c"}, code: 2, stderr: []string{"claims part is not base64url"}},
		{name: "empty stdin", args: []string{"-"}, code: 2, stderr: []string{"no token given"}},
		{name: "JSON without token", stdin: `{"error":"x"}`, code: 2, stderr: []string{"neither token nor access_token"}},
		{name: "two tokens", args: []string{valid, valid}, code: 2, stderr: []string{"give one token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, nil, append([]string{"inspect"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			mustContain(t, "stdout", r.stdout, tc.stdout...)
			mustContain(t, "stderr", r.stderr, tc.stderr...)
		})
	}
}

func TestInspectJSON(t *testing.T) {
	t.Parallel()
	key, dir := testKey(t, false)
	for _, tc := range []struct {
		name    string
		tok     string
		code    int
		expired bool
		ok      bool
		reason  string
		expIn   int64
	}{
		{"valid", sign(t, key, claims(t0.Add(-time.Minute), 5*time.Minute, pull("stable/hello"))), 0, false, true, "", 240},
		{"expired", sign(t, key, claims(t0.Add(-10*time.Minute), 5*time.Minute, pull("stable/hello"))), 1, true, false, auth.ReasonExpired, -300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", nil, "inspect", "--json", "--jwks", filepath.Join(dir, JWKSFile), tc.tok)
			if r.code != tc.code {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var got struct {
				Header       map[string]any         `json:"header"`
				Claims       map[string]any         `json:"claims"`
				ExpiresAt    time.Time              `json:"expires_at"`
				Expired      bool                   `json:"expired"`
				ExpiresIn    int64                  `json:"expires_in_seconds"`
				Access       []auth.ResourceActions `json:"access"`
				Verification verification           `json:"verification"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			if got.Expired != tc.expired || got.ExpiresIn != tc.expIn || got.Verification.OK != tc.ok ||
				got.Verification.Reason != tc.reason || !got.Verification.Checked {
				t.Errorf("got %+v", got)
			}
			if got.Header["kid"] != key.KeyID || got.Claims["sub"] != "alice@example.com" ||
				len(got.Access) != 1 || got.Access[0].Name != "stable/hello" {
				t.Errorf("got %+v", got)
			}
			// Times stay whole numbers, as they were in the token.
			if !strings.Contains(r.stdout, `"exp": 17`) {
				t.Errorf("exp not an integer:\n%s", r.stdout)
			}
		})
	}
}

func TestColour(t *testing.T) {
	t.Parallel()
	key, _ := testKey(t, false)
	tok := sign(t, key, claims(t0.Add(-10*time.Minute), 5*time.Minute))
	var out strings.Builder
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out, now: func() time.Time { return t0 }, client: http.DefaultClient, color: true}
	e.run(t.Context(), []string{"inspect", tok})
	if !strings.Contains(out.String(), "\x1b[31mEXPIRED") {
		t.Errorf("no red EXPIRED on a terminal:\n%q", out.String())
	}
	// Not a terminal: never colour, whatever NO_COLOR says.
	if colorTerminal(&out) {
		t.Error("a strings.Builder is not a terminal")
	}
	f, _ := os.CreateTemp(t.TempDir(), "out")
	defer f.Close()
	if colorTerminal(f) {
		t.Error("a file is not a terminal")
	}
}

func TestHumanDurations(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		5 * time.Minute:                      "5m",
		5*time.Minute + 3*time.Second:        "5m3s",
		90 * time.Second:                     "1m30s",
		2 * time.Hour:                        "2h",
		26 * time.Hour:                       "26h",
		3*24*time.Hour + 5*time.Hour:         "3d5h",
		10 * 24 * time.Hour:                  "10d",
		1500 * time.Millisecond:              "2s",
		2*time.Hour + 30*time.Minute:         "2h30m",
		3650 * 24 * time.Hour:                "3650d",
		3*time.Hour + 10*time.Millisecond:    "3h",
		59*time.Minute + 59*time.Second:      "59m59s",
		47*time.Hour + 59*time.Minute:        "47h59m",
		48 * time.Hour:                       "2d",
		4*time.Minute + 500*time.Millisecond: "4m1s",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
	if got := relative(t0, t0.Add(300*time.Millisecond)); got != "now" {
		t.Errorf("relative now = %q", got)
	}
}
