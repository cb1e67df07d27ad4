package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

// replica is one token service replica: its clients' and its admin API's
// base URLs.
type replica struct{ url, admin string }

// vendorStack is what a vendor runs: two token service replicas on one
// PostgreSQL, each with the admin API and the usage intake, and a gateway
// that sends its usage to the first, in front of a registry holding one
// image.
type vendorStack struct {
	replicas [2]replica
	gwHost   string // localhost:PORT
	config   string // the token service's configuration file
	digest   string // of stable/app:v1
}

func newVendorStack(t *testing.T, db *accounts.Config) *vendorStack {
	t.Helper()
	dir := t.TempDir()
	logs := &testutil.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("services' log:\n%s", logs)
		}
	})
	s := &vendorStack{config: filepath.Join(dir, "tokenserver.yaml")}

	// The registry behind the gateway, with the image.
	upURL, digest := upstreamWithImage(t, dir, "stable/app:v1")
	s.digest = digest.String()
	writeFile(t, filepath.Join(dir, "upstream.password"), upstreamPassword)

	// The token service's configuration, as a vendor writes it: the
	// database, the admin API, the usage intake's secret.
	keyPath, _ := tokenServerFiles(t, dir)
	secret := filepath.Join(dir, "usage.secret")
	writeFile(t, secret, strings.Repeat("5ec2e7", 8))
	writeFile(t, s.config, sqlTokenServerConfig(keyPath, db.Driver, db.DSN, secret))

	// The vendor's one-time setup, the only commands with database access.
	if out, code := s.accountsCLI(t, "migrate"); code != 0 {
		t.Fatalf("accounts migrate: %s", out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running []chan error
	t.Cleanup(func() {
		cancel()
		for _, done := range running {
			if err := <-done; err != nil {
				t.Errorf("token service: %v", err)
			}
		}
	})
	for i := range s.replicas {
		cfg, err := tokenserver.LoadConfig(s.config)
		if err != nil {
			t.Fatal(err)
		}
		ln, aln, mln := listenLocal(t), listenLocal(t), listenLocal(t)
		ts, err := tokenserver.New(ctx, cfg, tokenserver.Options{
			Logger: log.With("replica", i), Listener: ln, AdminListener: aln, MetricsListener: mln,
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		running = append(running, done)
		go func() {
			done <- ts.Run(ctx)
			ts.Close()
		}()
		s.replicas[i] = replica{url: "http://" + ln.Addr().String(), admin: "http://" + aln.Addr().String() + "/admin/v1"}
	}

	// The gateway; its usage goes to the first replica.
	ln := listenLocal(t)
	s.gwHost = "localhost:" + fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	startUsageGateway(t, ctx, log, ln, s.gwHost, s.replicas[0].url, upURL, secret, dir)
	return s
}

// httpClient bounds every call of the test to the services.
var httpClient = &http.Client{Timeout: 30 * time.Second}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// accountsCLI runs `tokenserver accounts ARGS -config F`.
func (s *vendorStack) accountsCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := tokencli.Run(t.Context(), append(append([]string{"accounts"}, args...), "-config", s.config, "--actor", "vendor"), nil, &out, &errb, tokenserver.AccountsConfig)
	return out.String() + errb.String(), code
}

// adminClient calls one replica's admin API with a key.
type adminClient struct {
	t    *testing.T
	base string
	key  string
}

// call sends method path with body as JSON (none when ""), and checks the
// status.
func (c adminClient) call(method, path, body string, status int, header ...string) (http.Header, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	return resp.Header, b
}

func (c adminClient) json(method, path, body string, status int, v any) {
	c.t.Helper()
	_, b := c.call(method, path, body, status)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// TestVendorOverTheAPI is the vendor's day without database access, after
// the one-time setup (`accounts migrate`, one admin key): over the admin
// API only, create the channels and an account, grant stable, issue a
// named token; the customer logs in and pulls with docker (twice: the
// second pull sends only a HEAD, a check) and with crane; the vendor sees
// the first pull and the check, revokes the token, which both replicas
// refuse within 2s, and exports the month's usage as CSV.
func TestVendorOverTheAPI(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	db := accountstest.Shared(t).NewDatabase(t)
	s := newVendorStack(t, db)
	ctx := t.Context()

	out, code := s.accountsCLI(t, "admin-key", "add", "crm", "--scope", "write", "--json")
	var created struct{ Key string }
	if err := json.Unmarshal([]byte(out), &created); code != 0 || err != nil || !strings.HasPrefix(created.Key, accounts.AdminKeyPrefix) {
		t.Fatalf("admin-key add: exit %d, %v: %s", code, err, out)
	}
	a := adminClient{t, s.replicas[0].admin, created.Key}
	b := adminClient{t, s.replicas[1].admin, created.Key}

	// 1. Channels, an account on a trial channel, then stable granted (on
	// the other replica: both serve the API) and a named token.
	a.json("POST", "/channels", `{"name":"stable","description":"releases"}`, http.StatusCreated, nil)
	a.json("POST", "/channels", `{"name":"beta"}`, http.StatusCreated, nil)
	a.json("POST", "/accounts", `{"email":"`+aliceUser+`","channels":["beta"]}`, http.StatusCreated, nil)
	b.json("PUT", "/accounts/"+aliceUser+"/channels/stable", "", http.StatusCreated, nil)
	var named struct {
		Created struct {
			ID   int64
			Name string
		}
		Token string
	}
	a.json("POST", "/accounts/"+aliceUser+"/tokens", `{"name":"prod-cluster"}`, http.StatusCreated, &named)
	if named.Created.Name != "prod-cluster" || named.Token == "" {
		t.Fatalf("named token: %+v", named)
	}

	// 2. The customer: docker login and pull. The vendor sees the pull
	// (docker asks for the tag with a HEAD, then GETs the manifest by
	// digest) on the other replica.
	type event = accounts.UsageEvent
	var events []event
	seen := func() map[string]int {
		var p struct {
			Items      []event `json:"items"`
			NextCursor string  `json:"next_cursor"`
		}
		b.json("GET", "/usage?account="+url.QueryEscape(aliceUser)+"&limit=1000", "", http.StatusOK, &p)
		events = p.Items
		n := map[string]int{}
		for _, e := range p.Items {
			n[e.Outcome+" "+e.Agent]++
		}
		return n
	}
	image := s.gwHost + "/stable/app:v1"
	if out, err := d.Docker(ctx, named.Token+"\n", "login", s.gwHost, "-u", aliceUser, "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	if out, err := d.Docker(ctx, "", "pull", image); err != nil || !strings.Contains(out, s.digest) {
		t.Fatalf("docker pull: %v\n%s\ndockerd log:\n%s", err, out, d.Log())
	}
	var first map[string]int
	testutil.WaitFor(t, "the first pull in /admin/v1/usage", 10*time.Second, func() bool {
		first = seen()
		return first["pull docker"] >= 1
	})

	// 3. The same pull again: the daemon has the image and sends only a
	// HEAD, which is counted as a check, not a pull. Then crane.
	if out, err := d.Docker(ctx, "", "pull", image); err != nil || !strings.Contains(out, "Image is up to date for "+image) {
		t.Fatalf("docker pull again: %v\n%s", err, out)
	}
	customer := remote.WithAuth(&authn.Basic{Username: aliceUser, Password: named.Token})
	if got, err := pull(ctx, ref(t, s.gwHost, "stable/app:v1"), customer); err != nil || got.String() != s.digest {
		t.Fatalf("crane pull: %v %v", got, err)
	}
	var n map[string]int
	testutil.WaitFor(t, "the re-pull's check and crane's pull in /admin/v1/usage", 10*time.Second, func() bool {
		n = seen()
		return n["check docker"] >= first["check docker"]+1 && n["pull crane"] >= 1
	})
	if n["check docker"] != first["check docker"]+1 || n["pull docker"] != first["pull docker"] {
		t.Errorf("docker after the first pull %v, after the re-pull %v: want one more check, no more pulls", first, n)
	}
	for _, e := range events {
		if e.Account != aliceUser || e.Repository != "stable/app" || e.Channel != "stable" || e.Digest != s.digest ||
			(e.Reference != "v1" && e.Reference != s.digest) || e.Client != "127.0.0.0/24" {
			t.Errorf("event %+v", e)
		}
	}
	// 4. The account shows its first and last pull and last check.
	var shown struct {
		Usage accounts.AccountUsage `json:"usage"`
	}
	a.json("GET", "/accounts/"+aliceUser, "", http.StatusOK, &shown)
	if shown.Usage.FirstPull.IsZero() || shown.Usage.LastCheck.IsZero() || shown.Usage.FirstPull.After(shown.Usage.LastPull) {
		t.Errorf("account usage %+v", shown.Usage)
	}

	// 5. Revoked over the API: refused by both replicas' /token within 2s.
	tokenOK := func(r replica) int {
		q := url.Values{"service": {service}, "scope": {"repository:stable/app:pull"}}
		req, err := http.NewRequestWithContext(ctx, "GET", r.url+"/token?"+q.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(aliceUser, named.Token)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, r := range s.replicas {
		if code := tokenOK(r); code != http.StatusOK {
			t.Fatalf("%s/token before the revocation: %d", r.url, code)
		}
	}
	a.call("DELETE", fmt.Sprintf("/accounts/%s/tokens/%d", aliceUser, named.Created.ID), "", http.StatusOK)
	revoked := time.Now()
	refused := map[string]bool{}
	testutil.WaitFor(t, "the revocation on every replica (within 2s)", 2*time.Second, func() bool {
		for _, r := range s.replicas {
			if !refused[r.url] && tokenOK(r) == http.StatusUnauthorized {
				refused[r.url] = true
			}
		}
		return len(refused) == len(s.replicas)
	})
	t.Logf("revocation refused by both replicas after %v", time.Since(revoked).Round(time.Millisecond))

	// 6. The month's usage as CSV, as a spreadsheet or a billing system
	// takes it.
	last := events[len(events)-1].Time
	month := time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, time.UTC)
	inMonth := 0 // the events of that month (all but at a month's turn)
	for _, e := range events {
		if !e.Time.Before(month) {
			inMonth++
		}
	}
	q := url.Values{"format": {"csv"}, "since": {month.Format(time.RFC3339)}, "until": {month.AddDate(0, 1, 0).Format(time.RFC3339)}}
	h, body := b.call("GET", "/usage?"+q.Encode(), "", http.StatusOK)
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment;") {
		t.Errorf("CSV answer headers: %v", h)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, body)
	}
	if strings.Join(rows[0], ",") != "time,account,outcome,repository,channel,reference,digest,reason,client,agent" {
		t.Errorf("CSV header %q", rows[0])
	}
	if len(rows)-1 != inMonth {
		t.Errorf("CSV has %d events, the JSON listing %d of that month:\n%s", len(rows)-1, inMonth, body)
	}
	n = map[string]int{}
	for _, r := range rows[1:] {
		if r[1] != aliceUser || r[3] != "stable/app" || r[4] != "stable" || r[6] != s.digest || r[8] != "127.0.0.0/24" {
			t.Errorf("CSV row %q", r)
		}
		n[r[2]+" "+r[9]]++
	}
	if n["pull docker"] < 1 || n["check docker"] < 1 || n["pull crane"] < 1 {
		t.Errorf("CSV outcomes %v:\n%s", n, body)
	}
}

// startUsageGateway serves a gateway on ln, reached by clients as host, in
// front of the upstream at upURL (the htpasswd user of upstreamWithImage,
// its password in dir/upstream.password), taking tokens from the token
// service at tokenURL and sending it usage events (secret: the intake's
// shared secret file) every 200 ms.
func startUsageGateway(t *testing.T, ctx context.Context, log *slog.Logger, ln net.Listener, host, tokenURL, upURL, secret, dir string) {
	t.Helper()
	cfg, err := gateway.ParseConfig(fmt.Appendf(nil, `
listen: %q
realm: "http://%s/token"
service: %s
issuer: %s
keys:
  jwks_url: "%s/.well-known/jwks.json"
token_endpoint: "%s/token"
usage:
  endpoint: "%s%s"
  secret_file: %q
  flush_interval: 200ms
upstream:
  url: %q
  static:
    username: %s
    password_file: %q
`, ln.Addr().String(), host, service, issuer, tokenURL, tokenURL, tokenURL, tokenserver.UsagePath, secret, upURL, upstreamUser, filepath.Join(dir, "upstream.password")))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log.With("service", "gateway")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
}

// sqlTokenServerConfig is a token service's configuration as a vendor
// writes it for SQL accounts: the signing key, the database (revocations
// polled every 500 ms), the admin API, the usage intake's secret, all on
// free loopback ports.
func sqlTokenServerConfig(keyPath, driver, dsn, usageSecret string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
issuer: %s
service: %s
signing_key: %q
licenses:
  sql:
    driver: %s
    dsn: %q
    revocation_poll: 500ms
admin:
  listen: 127.0.0.1:0
usage:
  secret_file: %q
metrics:
  listen: 127.0.0.1:0
`, issuer, service, keyPath, driver, dsn, usageSecret)
}
