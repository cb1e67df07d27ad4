package devstack

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/pullreport"
	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// unlicensedMessage is what every client that shows the registry's words
// prints when the demo account pulls from the beta channel.
const unlicensedMessage = "the token of " + DemoUser + " does not grant pull on channel 'beta' (the license does not include it)"

// TestDocker drives the stack with the real docker CLI and its own dockerd
// (classic image store), then with containerd's ctr against the containerd
// that dockerd runs: what a customer types, and what they read back. A
// second docker pull of an image the daemon has sends only a HEAD: it is
// counted as a check. `gateway report` then reads the stack's text log, as
// `make run` writes it.
func TestDocker(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	logs := &testutil.SyncBuffer{}
	st, _ := startStack(t, func(o *Options) {
		o.Logger = slog.New(slog.NewMultiHandler(o.Logger.Handler(), slog.NewTextHandler(logs, nil)))
	})
	host := st.GatewayHost
	licensed, unlicensed := host+"/"+LicensedRepo+":1.0", host+"/"+UnlicensedRepo+":1.0"
	ctx := t.Context()

	// loggedIn is what config.json holds for the gateway: docker keeps the
	// refresh token the login got, never the API token.
	loggedIn := func(t *testing.T) (bool, string) {
		t.Helper()
		var cfg struct {
			Auths map[string]struct{ Auth, IdentityToken string }
		}
		b, err := os.ReadFile(filepath.Join(d.ConfigDir, "config.json"))
		if err != nil {
			return false, ""
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), DemoToken) {
			t.Errorf("config.json holds the API token:\n%s", b)
		}
		a, found := cfg.Auths[host]
		return found, a.IdentityToken
	}
	creds := DemoUser + ":" + DemoToken
	var afterPull map[string]float64 // gateway_pulls_total of the licensed repository

	// Run in order: each step starts from the state the previous left.
	steps := []struct {
		name    string
		tool    string // docker or ctr
		stdin   string
		args    []string
		succeed bool
		want    string           // in the output
		check   func(*testing.T) // more, after the command
	}{
		{name: "login with -p", tool: "docker", args: []string{"login", host, "-u", DemoUser, "-p", DemoToken},
			succeed: true, want: "Login Succeeded", check: func(t *testing.T) {
				if found, id := loggedIn(t); !found || id == "" {
					t.Errorf("config.json: login stored %v, identity token %q", found, id)
				}
			}},
		{name: "logout", tool: "docker", args: []string{"logout", host}, succeed: true, want: "Removing login credentials for " + host,
			check: func(t *testing.T) {
				if found, _ := loggedIn(t); found {
					t.Error("config.json still holds the login")
				}
			}},
		{name: "login with --password-stdin", tool: "docker", stdin: DemoToken + "\n", args: []string{"login", host, "-u", DemoUser, "--password-stdin"},
			succeed: true, want: "Login Succeeded"},
		{name: "pull licensed", tool: "docker", args: []string{"pull", licensed}, succeed: true, want: "Digest: " + st.Images[licensed],
			check: func(t *testing.T) {
				// In the daemon's store under the pushed digest.
				out, _ := d.Docker(ctx, "", "image", "inspect", "--format", "{{json .RepoDigests}}", licensed)
				if want := host + "/" + LicensedRepo + "@" + st.Images[licensed]; !strings.Contains(out, want) {
					t.Errorf("image inspect: %s, want %s", out, want)
				}
				afterPull = pullCounts(t, st.GatewayMetricsURL)
				if afterPull["pull"] < 1 {
					t.Errorf("gateway_pulls_total after a pull: %v", afterPull)
				}
			}},
		// The daemon has the image: docker asks for the manifest's digest
		// with a HEAD and fetches nothing.
		{name: "pull licensed again", tool: "docker", args: []string{"pull", licensed}, succeed: true, want: "Image is up to date for " + licensed,
			check: func(t *testing.T) {
				again := pullCounts(t, st.GatewayMetricsURL)
				if again["check"] < afterPull["check"]+1 || again["pull"] != afterPull["pull"] {
					t.Errorf("gateway_pulls_total: after the first pull %v, after the second %v: want one more check, no more pulls", afterPull, again)
				}
			}},
		{name: "pull unlicensed", tool: "docker", args: []string{"pull", unlicensed}, want: "denied: " + unlicensedMessage,
			check: func(t *testing.T) {
				// Nothing of beta was served: counted without its name.
				m := scrape(t, st.GatewayMetricsURL)
				if !strings.Contains(m, `gateway_pulls_total{channel="(unknown)",kind="denied",repository="(unknown)"}`) {
					t.Errorf("no denied count:\n%s", m)
				}
			}},
		{name: "wrong password", tool: "docker", args: []string{"login", host, "-u", DemoUser, "-p", "wrong-token"},
			want: "unauthorized: invalid username or API token"},
		{name: "logout again", tool: "docker", args: []string{"logout", host}, succeed: true, want: "Removing login credentials for " + host},
		{name: "pull after logout", tool: "docker", args: []string{"pull", host + "/" + LicensedRepo + ":latest"},
			want: "unauthorized: authentication required"},

		{name: "ctr pull licensed", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", creds, licensed}, succeed: true,
			check: func(t *testing.T) {
				out, _ := d.Ctr(ctx, "image", "ls")
				if !strings.Contains(out, licensed) || !strings.Contains(out, st.Images[licensed]) {
					t.Errorf("ctr image ls:\n%s", out)
				}
			}},
		// containerd shows only the challenge's error= word.
		{name: "ctr pull unlicensed", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", creds, unlicensed},
			want: "server message: insufficient_scope"},
		{name: "ctr wrong password", tool: "ctr", args: []string{"image", "pull", "--plain-http", "--user", DemoUser + ":wrong-token", licensed},
			want: "failed to fetch oauth token: unexpected status: 401 Unauthorized"},
	}
	for _, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			var out string
			var err error
			if step.tool == "ctr" {
				out, err = d.Ctr(ctx, step.args...)
			} else {
				out, err = d.Docker(ctx, step.stdin, step.args...)
			}
			t.Logf("%s %s\n%s", step.tool, strings.Join(step.args, " "), out)
			if (err == nil) != step.succeed {
				t.Fatalf("%s: error %v, want success %v", step.tool, err, step.succeed)
			}
			if !strings.Contains(out, step.want) {
				t.Errorf("output lacks %q", step.want)
			}
			if step.check != nil {
				step.check(t)
			}
		})
		if !ok {
			return // later steps build on this one
		}
	}

	// `gateway report` on the stack's text log. docker and containerd
	// resolve a tag with a HEAD (a check), then GET the manifests by
	// digest (pulls): the tag's row has the checks (two of docker's, and
	// ctr's), the index's digest the pulls. The refused beta pulls are
	// listed apart.
	var out, errb bytes.Buffer
	if code := pullreport.Run([]string{"--format", "json", "--repository", LicensedRepo}, strings.NewReader(logs.String()), &out, &errb); code != 0 {
		t.Fatalf("report: exit %d: %s", code, errb.String())
	}
	var rows []pullreport.Row
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	byRef := map[string]pullreport.Row{}
	for _, r := range rows {
		if r.Customer != DemoUser {
			t.Errorf("row %+v", r)
		}
		byRef[r.Reference] = r
	}
	if tag, index := byRef["1.0"], byRef[st.Images[licensed]]; tag.Checks < 2 || tag.Pulls != 0 || tag.Digest != st.Images[licensed] ||
		index.Pulls < 1 || index.Bytes <= 0 {
		t.Errorf("report of %s on the text log: %+v\n%s", LicensedRepo, rows, errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := pullreport.Run([]string{"--format", "json", "--refused"}, strings.NewReader(logs.String()), &out, &errb); code != 0 {
		t.Fatalf("report --refused: exit %d: %s", code, errb.String())
	}
	var refused []pullreport.Refusal
	if err := json.Unmarshal(out.Bytes(), &refused); err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused[0].Customer != DemoUser || refused[0].Repository != UnlicensedRepo ||
		refused[0].Reason != "channel_not_licensed" || refused[0].Attempts < 2 {
		t.Errorf("refusals on the text log (docker and ctr): %+v", refused)
	}
	out.Reset()
	errb.Reset()
	pullreport.Run(nil, strings.NewReader(logs.String()), &out, &errb)
	pullreport.Run([]string{"--refused"}, strings.NewReader(logs.String()), &out, &errb)
	t.Logf("gateway report, then --refused:\n%s%s", out.String(), errb.String())
}

// scrape is the body of a /metrics.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pullCounts are gateway_pulls_total of the licensed repository by kind.
func pullCounts(t *testing.T, base string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, kind := range []string{"pull", "check", "denied"} {
		prefix := `gateway_pulls_total{channel="stable",kind="` + kind + `",repository="` + LicensedRepo + `"} `
		for line := range strings.Lines(scrape(t, base)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				out[kind] = f
			}
		}
	}
	return out
}
