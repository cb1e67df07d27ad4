package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/browsertest"
	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
	"github.com/acme/registry-gateway/internal/testsupport/oidctest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// consoleStack is the product as a vendor runs it with the console: the
// token service (SQL accounts, admin API, console with single sign-on
// against a real OpenID provider), a gateway in front of a registry
// holding stable/hello, the gateway's usage sent to the token service.
type consoleStack struct {
	console string // http://127.0.0.1:PORT/console/
	gwHost  string // localhost:PORT, as customers type it
	digest  string // of stable/hello:1.0
	idp     *oidctest.Provider
}

const vendorStaff = "dana@vendor.example"

func newConsoleStack(t *testing.T) *consoleStack {
	t.Helper()
	dir := t.TempDir()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("services' log:\n%s", logs)
		}
	})
	s := &consoleStack{}
	upURL, digest := upstreamWithImage(t, dir, "stable/hello:1.0")
	s.digest = digest.String()
	writeFile(t, filepath.Join(dir, "upstream.password"), upstreamPassword)

	ln, aln, mln, gln := listenLocal(t), listenLocal(t), listenLocal(t), listenLocal(t)
	s.gwHost = "localhost:" + fmt.Sprint(gln.Addr().(*net.TCPAddr).Port)
	s.console = "http://" + aln.Addr().String() + "/console/"
	redirect := s.console + "sign-in/oidc/callback"

	s.idp = oidctest.Start(t, oidctest.Options{
		Users:   []oidctest.User{{Username: "dana", Email: vendorStaff, EmailVerified: true, Name: "Dana", Groups: []string{"support"}}},
		Clients: []oidctest.Client{{ID: "registry-console", Secret: "console-secret", RedirectURIs: []string{redirect}}},
	})
	s.idp.AutoLogin("dana")

	db := accountstest.SQLite(t)
	keyPath, _ := tokenServerFiles(t, dir)
	secret, clientSecret, config := filepath.Join(dir, "usage.secret"), filepath.Join(dir, "oidc.secret"), filepath.Join(dir, "tokenserver.yaml")
	writeFile(t, secret, strings.Repeat("5ec2e7", 8))
	writeFile(t, clientSecret, "console-secret\n")
	writeFile(t, config, sqlTokenServerConfig(keyPath, db.Driver, db.DSN, secret)+fmt.Sprintf(`console:
  enabled: true
  registry_url: "http://%s"
  registry_host: %q
  oidc:
    issuer: %q
    client_id: registry-console
    client_secret_file: %q
    redirect_url: %q
    allowed_email_domains: [vendor.example]
`, s.gwHost, s.gwHost, s.idp.Issuer, clientSecret, redirect))
	vs := &vendorStack{config: config}
	if out, code := vs.accountsCLI(t, "migrate"); code != 0 {
		t.Fatalf("accounts migrate: %s", out)
	}
	for _, ch := range []string{"stable", "beta"} {
		if out, code := vs.accountsCLI(t, "channels", "add", ch); code != 0 {
			t.Fatalf("channels add %s: %s", ch, out)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := tokenserver.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tokenserver.New(ctx, cfg, tokenserver.Options{Logger: log.With("service", "tokenserver"), Listener: ln, AdminListener: aln, MetricsListener: mln})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- ts.Run(ctx)
		ts.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("token service: %v", err)
		}
	})
	tsURL := "http://" + ln.Addr().String()

	startUsageGateway(t, ctx, log, gln, s.gwHost, tsURL, upURL, secret, dir)
	return s
}

// shell runs a command as the console shows it, with bash, against the
// private dockerd; stdin answers its prompts.
func shell(ctx context.Context, d *dockertest.Daemon, stdin, command string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Env = d.Env()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestConsoleInTheBrowser is the console's story in a real browser
// against the real services: the vendor signs in through the OpenID
// provider, creates an account, grants stable and issues a token; the
// customer signs in with it, sees stable/hello and the commands, and the
// commands as shown log docker in and pull; the vendor revokes the token
// in the console and the pull is refused within 2 s. On the way: a form
// without its CSRF token is refused, an account address holding <script>
// renders as text, and every page is screenshotted at 1280 and 375 px,
// walked with the keyboard and checked for overflow at 375 px.
func TestConsoleInTheBrowser(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	b := browsertest.Start(t)
	s := newConsoleStack(t)
	ctx := t.Context()
	const customer = "ops@customer.example"

	// 1. The vendor signs in with single sign-on.
	vendor := b.NewIncognitoTab()
	vendor.Navigate(s.console + "sign-in")
	vendor.CheckPage("sign-in")
	vendor.ClickAndWait("#sso")
	if loc := vendor.Location(); loc != s.console+"vendor/" {
		t.Fatalf("after single sign-on the vendor is at %s", loc)
	}
	if who := vendor.Text(".who"); who != vendorStaff {
		t.Fatalf("signed in as %q", who)
	}

	// 2. Creates the account (on beta), grants stable, issues a token.
	vendor.Navigate(s.console + "vendor/accounts")
	vendor.Do(chromedp.SendKeys(chromedp.CSS("#new-email"), customer), chromedp.Click(chromedp.CSS(`input[name=channel][value=beta]`)))
	vendor.ClickAndWait(`form[action="/console/vendor/accounts"][method=post] button[type=submit]`)
	if h1 := vendor.Text("h1"); h1 != "Account "+customer {
		t.Fatalf("after creating: %q", h1)
	}
	vendor.Do(chromedp.SetValue(chromedp.CSS("#grant-channel"), "stable"))
	vendor.ClickAndWait(`form[action$="/grant"] button[type=submit]`)
	vendor.Do(chromedp.SendKeys(chromedp.CSS("#token-name"), "laptop"))
	vendor.ClickAndWait(`form[action$="/tokens"] button[type=submit]`)
	token := strings.TrimSpace(vendor.Text("#secret"))
	if len(token) < 20 || strings.ContainsAny(token, " <") {
		t.Fatalf("token shown %q", token)
	}
	vendor.CheckPage("vendor-account-token-shown")

	// 3. A form without its CSRF token is refused, and changes nothing.
	vendor.Navigate(s.console + "vendor/accounts/" + customer)
	vendor.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/state"] input[name=csrf]').remove()`))
	vendor.ClickAndWait(`form[action$="/state"] button[type=submit]`)
	if h1 := vendor.Text("h1"); h1 != "Form refused" {
		t.Fatalf("a form without its CSRF token: %q", h1)
	}
	vendor.Navigate(s.console + "vendor/accounts/" + customer)
	if !strings.Contains(vendor.Text("main dl"), "active") {
		t.Fatal("the refused form changed the account's state")
	}

	// 4. An address holding <script> renders as text.
	const evil = `<script>window.pwned=1</script>@evil.example`
	vendor.Navigate(s.console + "vendor/accounts")
	vendor.Do(chromedp.SendKeys(chromedp.CSS("#new-email"), evil), chromedp.Click(chromedp.CSS(`input[name=channel][value=beta]`)))
	vendor.ClickAndWait(`form[action="/console/vendor/accounts"][method=post] button[type=submit]`)
	vendor.Navigate(s.console + "vendor/accounts")
	if pwned := browsertest.Eval[bool](vendor, `window.pwned === 1`); pwned {
		t.Fatal("the account address ran as a script")
	}
	if !strings.Contains(vendor.Text("table"), evil) {
		t.Fatal("the account address is not shown as text")
	}
	vendor.CheckPage("vendor-accounts")
	vendor.Navigate(s.console + "vendor/channels")
	vendor.CheckPage("vendor-channels")

	// 5. The customer signs in with the token, sees stable/hello and the
	// commands.
	cust := b.NewIncognitoTab()
	cust.Navigate(s.console + "sign-in")
	cust.Do(chromedp.SendKeys(chromedp.CSS("#email"), customer), chromedp.SendKeys(chromedp.CSS("#token"), token))
	cust.ClickAndWait(`form[action="/console/sign-in/customer"] button[type=submit]`)
	if loc := cust.Location(); loc != s.console+"customer/" {
		t.Fatalf("the customer's sign-in ended at %s: %s", loc, cust.Text("main"))
	}
	if repos := cust.Text(".repos"); !strings.Contains(repos, s.gwHost+"/stable/hello") || !strings.Contains(repos, "1.0") {
		t.Fatalf("the customer's repositories: %q", repos)
	}
	login, pullCmd := cust.Text("#cmd-docker-login"), cust.Text("#cmd-docker-pull")
	if want := "docker pull " + s.gwHost + "/stable/hello:1.0"; strings.TrimSpace(pullCmd) != want {
		t.Fatalf("pull command %q, want %q", pullCmd, want)
	}
	cust.CheckPage("customer-home")
	for _, page := range []string{"tokens", "usage"} {
		cust.Navigate(s.console + "customer/" + page)
		cust.CheckPage("customer-" + page)
	}
	cust.Navigate(s.console + "help")
	cust.CheckPage("help")

	// 6. The commands as shown work: docker login reads the token, docker
	// pull pulls.
	if out, err := shell(ctx, d, token+"\n", login); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("the login command as shown: %v\n%s", err, out)
	}
	if out, err := shell(ctx, d, "", pullCmd); err != nil || !strings.Contains(out, s.digest) {
		t.Fatalf("the pull command as shown: %v\n%s\ndockerd log:\n%s", err, out, d.Log())
	}

	// A channel the licence lacks is refused, and counted as such.
	creds := remote.WithAuth(&authn.Basic{Username: customer, Password: token})
	if _, err := pull(ctx, ref(t, s.gwHost, "nightly/hello:1.0"), creds); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("a pull from a channel the licence lacks: %v", err)
	}

	// 7. The vendor revokes the token in the console: pulls with it are
	// refused within 2 s. The dashboard shows the pull and the refusal.
	vendor.Navigate(s.console + "vendor/accounts/" + customer)
	vendor.Do(chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('tbody tr')].find(r => r.cells[0].textContent === 'laptop').querySelector('form[action$="/revoke"] button').id = 'revoke-laptop'`))
	vendor.ClickAndWait("#revoke-laptop")
	revoked := time.Now()
	testutil.WaitFor(t, "the revoked token refused (within 2s)", 2*time.Second, func() bool {
		_, err := pull(ctx, ref(t, s.gwHost, "stable/hello:1.0"), creds)
		return statusOf(err) == http.StatusUnauthorized
	})
	t.Logf("revoked token refused after %v", time.Since(revoked).Round(time.Millisecond))
	if out, err := shell(ctx, d, token+"\n", login); err == nil {
		t.Fatalf("docker login with the revoked token succeeded:\n%s", out)
	}
	vendor.Navigate(s.console + "vendor/accounts/" + customer)
	if !strings.Contains(vendor.Text("main"), "revoked") {
		t.Error("the account page does not show the token revoked")
	}
	vendor.CheckPage("vendor-account")
	testutil.WaitFor(t, "the pull and the refusal on the dashboard", 10*time.Second, func() bool {
		vendor.Navigate(s.console + "vendor/")
		main := vendor.Text("main")
		return strings.Contains(main, "stable/hello") && strings.Contains(main, "nightly")
	})
	vendor.CheckPage("vendor-dashboard")
	for _, tab := range []*browsertest.Tab{vendor, cust} {
		for _, e := range tab.ConsoleErrors() {
			// The refused form's page is a 403 on purpose.
			if !strings.Contains(e, "status of 403") {
				t.Errorf("the console's pages wrote an error (a CSP violation?): %q", e)
			}
		}
	}
	t.Logf("screenshots in %s", b.Dir())
}
