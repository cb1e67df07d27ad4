package tokenserver

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// Every issued token gets one audit line naming it by jti; no secret (the
// password, the API token, the Authorization header, the issued JWT or
// refresh token) reaches any log line, at any level.
func TestAuditLogHasNoSecrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil) // logs at debug level into f.logs
	const wrongPassword = "wrong-password-6d1f0c"
	var issued []string // tokens and refresh tokens

	a := mustToken(t, get(t, f.url, aliceUser, aliceToken, url.Values{
		"service": {testService}, "scope": {"repository:stable/app:pull"}, "offline_token": {"true"}, "client_id": {"docker"},
	}))
	issued = append(issued, a.Token, a.RefreshToken)
	get(t, f.url, aliceUser, wrongPassword, scopes("repository:stable/app:pull"))
	p := mustToken(t, post(t, f.url, passwordGrant("repository:stable/app:pull", true)))
	issued = append(issued, p.AccessToken, p.RefreshToken)
	r := mustToken(t, post(t, f.url, refreshGrant(p.RefreshToken, "repository:stable/app:pull")))
	issued = append(issued, r.AccessToken)
	post(t, f.url, url.Values{"grant_type": {"password"}, "username": {aliceUser}, "password": {wrongPassword}})
	post(t, f.url, refreshGrant(p.RefreshToken+"x", ""))

	f.settle()
	logs := f.logs.String()
	secrets := map[string]string{
		"API token":            aliceToken,
		"wrong password":       wrongPassword,
		"Authorization header": base64.StdEncoding.EncodeToString([]byte(aliceUser + ":" + aliceToken)),
	}
	for i, tok := range issued {
		secrets["issued token "+string(rune('0'+i))] = tok
		// Any part of a JWT (the signature, the payload) is as bad.
		for j, part := range strings.Split(tok, ".") {
			if len(part) > 20 {
				secrets["part of issued token "+string(rune('0'+i))+"."+string(rune('0'+j))] = part
			}
		}
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains the %s", what)
		}
	}

	audit := auditLines(t, f)
	if len(audit) != 3 {
		t.Fatalf("%d audit lines for 3 tokens:\n%s", len(audit), logs)
	}
	for i, tok := range []string{a.Token, p.AccessToken, r.AccessToken} {
		c := f.verify(tok)
		l := audit[i]
		scopes, _ := l["scopes"].([]any)
		// token_fp is documented as the first 12 hex digits of the API
		// token's SHA-256 (the start of token_sha256 in a licence file).
		if l["sub"] != aliceUser || l["jti"] != c.ID || l["client"] != "127.0.0.1" ||
			l["token_fp"] != license.HashToken(aliceToken)[:12] ||
			!slices.Equal(scopes, []any{"repository:stable/app:pull"}) {
			t.Errorf("audit line %d = %v", i, l)
		}
	}
	if audit[0]["grant"] != "basic" || audit[1]["grant"] != "password" || audit[2]["grant"] != "refresh_token" {
		t.Errorf("grants %v %v %v", audit[0]["grant"], audit[1]["grant"], audit[2]["grant"])
	}
	// The refresh token is named by its jti, and the refresh grant says
	// which one was used.
	if audit[1]["refresh_jti"] == nil || audit[1]["refresh_jti"] != audit[2]["refresh_jti"] {
		t.Errorf("refresh_jti %v / %v", audit[1]["refresh_jti"], audit[2]["refresh_jti"])
	}
}

// With one log (the default), an issued token is one line: the access line
// of its request, named "token issued", with the audit fields; a failed
// login likewise, named "login failed" with its fields. With an audit log
// of its own, both lines go there and the access lines ("request") stay in
// the main log.
func TestAuditLineIsTheAccessLine(t *testing.T) {
	t.Parallel()
	lines := func(b *testutil.SyncBuffer) []map[string]any {
		t.Helper()
		var out []map[string]any
		for l := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if m["path"] == "/token" || m["msg"] == auditMsg || m["msg"] == loginFailedMsg { // not the start-up lines
				out = append(out, m)
			}
		}
		return out
	}
	q := url.Values{"service": {testService}, "scope": {"repository:stable/app:pull"}}

	f := newFixture(t, nil)
	a := mustToken(t, get(t, f.url, aliceUser, aliceToken, q))
	get(t, f.url, aliceUser, "wrong-password", q)
	f.settle()
	got := lines(f.logs)
	if len(got) != 2 {
		t.Fatalf("%d lines for one token and one failed login, want 2:\n%s", len(got), f.logs)
	}
	l := got[0]
	if l["msg"] != auditMsg || l["jti"] != f.verify(a.Token).ID || l["sub"] != aliceUser || l["grant"] != "basic" ||
		l["method"] != "GET" || l["path"] != "/token" || l["status"] != float64(200) || l["bytes"] == nil || l["duration"] == nil {
		t.Errorf("token line = %v", l)
	}
	if l := got[1]; l["msg"] != loginFailedMsg || l["status"] != float64(401) || l["reason"] != "wrong_token" || l["level"] != "INFO" || l["jti"] != nil {
		t.Errorf("failed login line = %v", l)
	}

	audit := &testutil.SyncBuffer{}
	f = newFixture(t, nil, func(_ *fixture, o *Options) {
		o.AuditLogger = slog.New(slog.NewJSONHandler(audit, nil))
	})
	a = mustToken(t, get(t, f.url, aliceUser, aliceToken, q))
	get(t, f.url, aliceUser, "wrong-password", q)
	f.settle()
	if got := lines(audit); len(got) != 2 || got[0]["msg"] != auditMsg || got[0]["jti"] != f.verify(a.Token).ID || got[0]["status"] != nil ||
		got[1]["msg"] != loginFailedMsg || got[1]["reason"] != "wrong_token" || got[1]["level"] != "INFO" || got[1]["status"] != nil {
		t.Errorf("audit log = %v", got)
	}
	if got := lines(f.logs); len(got) != 2 || got[0]["msg"] != "request" || got[0]["jti"] != nil ||
		got[1]["msg"] != "request" || got[1]["status"] != float64(401) || got[1]["reason"] != nil {
		t.Errorf("main log = %v", got)
	}
}
