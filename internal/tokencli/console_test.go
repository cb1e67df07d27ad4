package tokencli

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

var linkRe = regexp.MustCompile(`(https://\S+/console/link\?t=(\S+))`)

// The console's per-account setting and sign-in links, locally and through
// the admin API.
func TestAccountsConsoleCommands(t *testing.T) {
	t.Parallel()
	cfg := accountstest.SQLite(t)
	conf := accountsConfig(t, cfg)
	env := map[string]string{"USER": "vendor-ops"}
	run := func(args ...string) result {
		t.Helper()
		return runCLI(t, "", env, append([]string{"accounts"}, append(args, "-config", conf)...)...)
	}
	run("migrate").want(t, exitOK)
	run("channels", "add", "stable").want(t, exitOK)
	run("add", "alice@example.com", "--channels", "stable").want(t, exitOK)

	run("self-service", "alice@example.com", "on").want(t, exitOK, "alice@example.com: self-service tokens on")
	run("show", "alice@example.com", "--json").want(t, exitOK, `"self_service_tokens": true`)
	run("show", "alice@example.com").want(t, exitOK, "self-service  tokens: the customer creates and revokes their own")
	run("self-service", "alice@example.com", "maybe").want(t, exitUsage, `"maybe" is not on or off`)
	run("self-service", "nobody@example.com", "off").want(t, exitNotFound)
	run("self-service", "alice@example.com").want(t, exitUsage, "missing on or off")

	run("sign-in-link", "alice@example.com").want(t, exitUsage, "--console-url is required")
	r := run("sign-in-link", "alice@example.com", "--console-url", "https://console.example.com/console/", "--ttl", "1h")
	r.want(t, exitOK, "sign-in link for alice@example.com (works once, until ")
	m := linkRe.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no link in %q", r.stdout)
	}
	secret, _ := url.QueryUnescape(m[2])
	db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return t0 }})
	if email, err := db.RedeemSignInLink(t.Context(), secret); err != nil || email != "alice@example.com" {
		t.Errorf("the link: %q %v", email, err)
	}
	run("sign-in-link", "nobody@example.com", "--console-url", "https://c.example.com/console/").want(t, exitNotFound)

	// Through the admin API: the server makes the URL.
	e := newRemoteEnv(t, accountstest.SQLite(t))
	remote := func(args ...string) result {
		t.Helper()
		return runCLI(t, "", nil, append([]string{"accounts"}, append(args, e.flags(e.writeKeyFile)...)...)...)
	}
	remote("channels", "add", "stable").want(t, exitOK)
	remote("add", "bob@example.com", "--channels", "stable").want(t, exitOK)
	remote("self-service", "bob@example.com", "on").want(t, exitOK)
	if on, err := e.db.SelfServiceTokens(t.Context(), "bob@example.com"); err != nil || !on {
		t.Errorf("remote self-service: %v %v", on, err)
	}
	r = remote("sign-in-link", "bob@example.com", "--json")
	r.want(t, exitOK, `"url": "`+e.url+`/console/link?t=`)
	if strings.Contains(r.stderr, "error") {
		t.Error(r.stderr)
	}
}
