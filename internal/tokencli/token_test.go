package tokencli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// fakeGateway is a registry and token endpoint in one server, answering the
// way the product does: a Bearer challenge on /v2/, tokens that grant the
// `stable` channel to alice, 401 for anything else.
type fakeGateway struct {
	*httptest.Server
	key     *auth.SigningKey
	lastReq *http.Request
}

func newFakeGateway(t *testing.T, key *auth.SigningKey, challenge func(w http.ResponseWriter)) *fakeGateway {
	g := &fakeGateway{key: key}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		realm := g.URL + "/token"
		unauthorized := func(extra string) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="registry.example.com"`+extra)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		}
		switch {
		case r.URL.Path == "/token":
			g.lastReq = r.Clone(context.Background())
			_ = r.ParseForm()
			user, pass, ok := r.BasicAuth()
			if r.Method == http.MethodPost {
				user, pass, ok = r.PostForm.Get("username"), r.PostForm.Get("password"), true
			}
			if !ok || user != "alice@example.com" || pass != "s3cret" {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}`))
				return
			}
			scopes, err := auth.ParseScopes(r.Form["scope"])
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			var granted []auth.ResourceActions
			for _, s := range scopes {
				if auth.Channel(s.Name) == "stable" {
					granted = append(granted, auth.ResourceActions{Type: s.Type, Name: s.Name, Actions: []string{"pull"}})
				}
			}
			c := claims(t0.Add(-time.Minute), 5*time.Minute, granted...)
			tok, _ := g.key.Sign(c)
			_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": t0.Format(time.RFC3339)})
		case r.URL.Path == "/v2/":
			if challenge != nil {
				challenge(w)
				return
			}
			if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				return
			}
			unauthorized("")
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
			v := auth.NewVerifier(auth.VerifierConfig{Issuer: "acme-token-service", Audience: "registry.example.com",
				Keys: auth.StaticKeys{g.key.KeyID: g.key.Signer.Public()}, Clock: func() time.Time { return t0 }})
			c, err := v.Verify(r.Context(), raw)
			if err != nil || !c.Allows("repository", name, "pull") {
				unauthorized(`,scope="repository:` + name + `:pull",error="insufficient_scope"`)
				return
			}
			_, _ = w.Write([]byte(`{"name":"` + name + `","tags":["1.0","latest"]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(g.Close)
	return g
}

func TestTokenFlow(t *testing.T) {
	t.Parallel()
	key, dir := testKey(t, false)
	g := newFakeGateway(t, key, nil)
	jwks := filepath.Join(dir, JWKSFile)
	stable := "repository:stable/hello:pull"
	beta := "repository:beta/hello:pull"

	for _, tc := range []struct {
		name    string
		stdin   string
		env     map[string]string
		args    []string
		code    int
		stdout  []string
		stderr  []string
		account string // expected account= on the token request
	}{
		{name: "granted via registry", args: []string{"-u", "alice@example.com", "-p", "s3cret", "--scope", stable, "--registry", g.URL, "--jwks", jwks},
			stdout: []string{"answer      200 OK", "expires_in  300s", stable + "  pull       pull     granted",
				"GET /v2/                        200\n", "GET /v2/stable/hello/tags/list  200  tags: 1.0, latest", "OK signature verified",
				`audience "registry.example.com" matches, the issuer was taken from the token`},
			account: "alice@example.com"},
		{name: "password from stdin", stdin: "s3cret\n", args: []string{"-u", "alice@example.com", "-p", "-", "--scope", stable, "--registry", g.URL},
			stdout: []string{"granted"}},
		{name: "password from env", env: map[string]string{passwordEnv: "s3cret"}, args: []string{"--username", "alice@example.com", "--scope", stable, "--realm", g.URL + "/token", "--service", "registry.example.com"},
			stdout: []string{"realm       " + g.URL + "/token", "granted"}},
		{name: "login without scope", args: []string{"-u", "alice@example.com", "-p", "s3cret", "--registry", g.URL},
			stdout: []string{"GET /v2/  200", "(none: the token grants nothing but `docker login`)"}},
		{name: "POST like containerd", args: []string{"-u", "alice@example.com", "-p", "s3cret", "--post", "--scope", stable, "--registry", g.URL},
			stdout: []string{"granted"}},
		{name: "unlicensed channel", args: []string{"-u", "alice@example.com", "-p", "s3cret", "--scope", stable, "--scope", beta, "--registry", g.URL},
			code:   1,
			stdout: []string{beta + "    pull       -        NOT GRANTED", `does not hold channel "beta"`, "GET /v2/beta/hello/tags/list    401  UNAUTHORIZED: authentication required [challenge error=insufficient_scope]"}},
		{name: "wrong password", args: []string{"-u", "alice@example.com", "-p", "nope", "--scope", stable, "--registry", g.URL},
			code: 1, stdout: []string{"answer     401 Unauthorized", "FAILED the token service answered 401 Unauthorized: UNAUTHORIZED: invalid credentials", "hint: the e-mail or API token is wrong"}},
		{name: "anonymous", args: []string{"--scope", stable, "--registry", g.URL},
			code: 1, stdout: []string{"hint: no credentials were sent"}},
		{name: "raw", args: []string{"-u", "alice@example.com", "-p", "s3cret", "--scope", stable, "--registry", g.URL, "--raw"},
			stdout: []string{"eyJ"}},
		{name: "raw refused", args: []string{"-u", "alice@example.com", "-p", "nope", "--registry", g.URL, "--raw"},
			code: 1, stderr: []string{"no token: the token service answered 401"}},
		{name: "bad scope", args: []string{"-u", "a", "-p", "b", "--scope", "repository:UPPER:pull", "--registry", g.URL},
			code: 2, stderr: []string{`invalid scope "repository:UPPER:pull"`}},
		{name: "no password", args: []string{"-u", "alice@example.com", "--registry", g.URL},
			code: 2, stderr: []string{"no password for alice@example.com: pass -p - (stdin) or set TOKENSERVER_PASSWORD"}},
		{name: "neither registry nor realm", args: []string{"-u", "a", "-p", "b"},
			code: 2, stderr: []string{"give one of --registry URL or --realm URL"}},
		{name: "registry unreachable", args: []string{"-u", "a", "-p", "b", "--registry", "http://127.0.0.1:1"},
			code: 1, stdout: []string{"FAILED could not reach the registry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.stdin, tc.env, append([]string{"token"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			mustContain(t, "stdout", r.stdout, tc.stdout...)
			mustContain(t, "stderr", r.stderr, tc.stderr...)
			if strings.Contains(r.stdout+r.stderr, "s3cret") {
				t.Error("the password was printed")
			}
			if tc.account != "" {
				q := g.lastReq.URL.Query()
				if q.Get("account") != tc.account || q.Get("service") != "registry.example.com" || q.Get("scope") != stable {
					t.Errorf("token request query %v", q)
				}
			}
		})
	}
}

func TestTokenJSON(t *testing.T) {
	t.Parallel()
	key, _ := testKey(t, false)
	g := newFakeGateway(t, key, nil)
	r := runCLI(t, "", nil, "token", "-u", "alice@example.com", "-p", "s3cret", "--scope", "repository:beta/hello:pull", "--registry", g.URL, "--json")
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	var got tokenResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if got.Successful || got.Status != 200 || len(got.Scopes) != 1 || len(got.Scopes[0].Granted) != 0 ||
		got.Realm != g.URL+"/token" || got.Service != "registry.example.com" || len(got.Checks) != 2 || got.Checks[1].Status != 401 {
		t.Errorf("got %+v", got)
	}
}

func TestTokenChallengeProblems(t *testing.T) {
	t.Parallel()
	key, _ := testKey(t, false)
	for _, tc := range []struct {
		name      string
		challenge func(w http.ResponseWriter)
		want      string
	}{
		{"open registry", func(w http.ResponseWriter) {}, "answered 200 OK without credentials"},
		{"basic only", func(w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.WriteHeader(401)
		}, "the challenge is Basic, not Bearer"},
		{"no header", func(w http.ResponseWriter) { w.WriteHeader(401) }, "401 without a WWW-Authenticate header"},
		{"no realm", func(w http.ResponseWriter) {
			w.Header().Set("WWW-Authenticate", `Bearer service="x"`)
			w.WriteHeader(401)
		}, "has no realm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGateway(t, key, tc.challenge)
			r := runCLI(t, "", nil, "token", "-u", "a", "-p", "b", "--registry", g.URL)
			if r.code != 1 {
				t.Errorf("exit %d", r.code)
			}
			mustContain(t, "stdout", r.stdout, tc.want)
		})
	}
}

func TestTokenAnswerProblems(t *testing.T) {
	t.Parallel()
	key, _ := testKey(t, false)
	tok := sign(t, key, claims(t0.Add(-time.Minute), 5*time.Minute))
	for _, tc := range []struct {
		name string
		body string
		code int
		want []string
	}{
		{"float expires_in", `{"token":"` + tok + `","access_token":"` + tok + `","expires_in":300.5,"issued_at":"2026-11-29T10:00:00Z"}`, 0, []string{"expires_in is not an integer"}},
		{"no expires_in", `{"token":"` + tok + `","access_token":"` + tok + `","issued_at":"x"}`, 0, []string{"containerd caches such a token forever", "issued_at is not RFC 3339"}},
		{"token only", `{"token":"` + tok + `","expires_in":300,"issued_at":"2026-11-29T10:00:00Z"}`, 0, []string{"token and access_token differ"}},
		{"not JSON", `<html>`, 1, []string{"body that is not JSON"}},
		{"empty", `{}`, 1, []string{"neither token nor access_token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(tc.body)) }))
			defer srv.Close()
			r := runCLI(t, "", nil, "token", "-u", "a", "-p", "b", "--realm", srv.URL)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r.stdout)
			}
			mustContain(t, "stdout", r.stdout, tc.want...)
		})
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{srv.URL + "/healthz"}, 0},
		{[]string{srv.URL + "/readyz"}, 1},
		{[]string{"-timeout", "1s", "http://127.0.0.1:1/healthz"}, 1},
		{nil, 2},
		{[]string{"::bad"}, 2},
	} {
		r := runCLI(t, "", nil, append([]string{"healthcheck"}, tc.args...)...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, r.code, tc.code, r.stderr)
		}
	}
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	if r := runCLI(t, "", nil); r.code != 2 || !strings.Contains(r.stderr, "tokenserver keygen") {
		t.Errorf("no command: %+v", r)
	}
	if r := runCLI(t, "", nil, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown: %+v", r)
	}
	if r := runCLI(t, "", nil, "help"); r.code != 0 || !strings.Contains(r.stdout, "tokenserver inspect") {
		t.Errorf("help: %+v", r)
	}
	if r := runCLI(t, "", nil, "inspect", "-h"); r.code != 0 || !strings.Contains(r.stderr, "-jwks") {
		t.Errorf("inspect -h: %+v", r)
	}
}

func TestParseArgsInterspersed(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", nil, "inspect", "--json", "--", "-not-a-flag")
	if r.code != 2 || !strings.Contains(r.stderr, "not a JWT") {
		t.Errorf("-- then positional: %+v", r)
	}
}
