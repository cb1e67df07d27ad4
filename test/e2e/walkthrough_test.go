package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/devstack"
	"github.com/acme/registry-gateway/internal/pullreport"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

func TestMain(m *testing.M) { os.Exit(accountstest.Main(m)) }

// The vendor walk-through of docs/accounts.md, on SQLite and on PostgreSQL: from
// nothing (a configuration file and an empty database) through `accounts
// migrate`, `accounts channels add` and `accounts add` to a customer pulling
// through the gateway; then a grant (a typo of it refused), a revocation,
// and `gateway report` on the gateway's log.
func TestVendorWalkthrough(t *testing.T) {
	accountstest.Drivers(t, func(t *testing.T, db *accounts.Config) {
		dir := t.TempDir()
		for _, d := range []string{"deploy", "data"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"deploy/gateway.yaml", "deploy/upstream.htpasswd", "deploy/upstream.password", "deploy/tokenserver-sql.yaml"} {
			data, err := os.ReadFile(filepath.Join("../..", f))
			if err != nil {
				t.Fatal(err)
			}
			if f == "deploy/tokenserver-sql.yaml" {
				// The vendor's database instead of the demo's.
				data = bytes.Replace(data, []byte("driver: sqlite"), []byte("driver: "+db.Driver), 1)
				data = bytes.Replace(data, []byte("dsn: data/accounts.db"), []byte(fmt.Sprintf("dsn: %q", sqliteInDir(db, dir))), 1)
				data = bytes.Replace(data, []byte("signing_key: certs/token.key"), []byte("signing_key: "+filepath.Join(dir, "certs/token.key")), 1)
				data = bytes.Replace(data, []byte("signing_cert: certs/token.crt"), []byte("signing_cert: "+filepath.Join(dir, "certs/token.crt")), 1)
			}
			writeFile(t, filepath.Join(dir, f), string(data))
		}
		config := filepath.Join(dir, "deploy/tokenserver-sql.yaml")
		accountsCLI := func(args ...string) (string, int) {
			t.Helper()
			var out, errb bytes.Buffer
			code := tokencli.Run(t.Context(), append(append([]string{"accounts"}, args...), "-config", config, "--actor", "vendor"), nil, &out, &errb, tokenserver.AccountsConfig)
			return out.String() + errb.String(), code
		}

		// 1. Schema, the channels, then the customer's account; the token
		// is printed once.
		if out, code := accountsCLI("migrate"); code != 0 {
			t.Fatalf("migrate: %s", out)
		}
		for _, ch := range []string{"stable", "beta"} {
			if out, code := accountsCLI("channels", "add", ch); code != 0 {
				t.Fatalf("channels add %s: %s", ch, out)
			}
		}
		out, code := accountsCLI("add", aliceUser, "--channels", "stable", "--expires", "2099-12-31", "--json")
		if code != 0 {
			t.Fatalf("add: %s", out)
		}
		var added struct{ Token string }
		if err := json.Unmarshal([]byte(out), &added); err != nil || !strings.HasPrefix(added.Token, "rgw_") {
			t.Fatalf("add: %v %s", err, out)
		}

		// 2. The services, from the configuration files.
		logs := &testutil.SyncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		st, err := devstack.Start(ctx, devstack.Options{
			Dir: dir, TokenServerConfig: "deploy/tokenserver-sql.yaml",
			GatewayAddr: "127.0.0.1:0", TokenServerAddr: "127.0.0.1:0", UpstreamAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewJSONHandler(logs, nil)), DemoToken: added.Token,
		})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			if err := st.Wait(); err != nil {
				t.Errorf("stack: %v", err)
			}
		})

		// 3. The customer logs in with e-mail and token, and pulls.
		tag := devstack.DemoTags[0]
		customer := remote.WithAuth(&authn.Basic{Username: aliceUser, Password: added.Token})
		if _, err := pull(t.Context(), ref(t, st.GatewayHost, devstack.LicensedRepo+":"+tag), customer); err != nil {
			t.Fatalf("pull %s: %v", devstack.LicensedRepo, err)
		}
		if _, err := pull(t.Context(), ref(t, st.GatewayHost, devstack.UnlicensedRepo+":"+tag), customer); statusOf(err) != http.StatusUnauthorized {
			t.Fatalf("pull of an unlicensed channel: %v", err)
		}
		// What docker does for an image it holds: a HEAD of the tag.
		if _, err := remote.Head(ref(t, st.GatewayHost, devstack.LicensedRepo+":"+tag), customer, remote.WithContext(t.Context())); err != nil {
			t.Fatalf("HEAD %s: %v", devstack.LicensedRepo, err)
		}

		// 4. A grant takes effect at once (within revocation_poll, 500ms;
		// the bound of 1s is measured in tokenserver's
		// TestSQLRevocationOnTwoReplicas, the pulls here take their time).
		// A typo is refused, naming the channel meant.
		if out, code := accountsCLI("grant", aliceUser, "bta"); code != 3 || !strings.Contains(out, `unknown channel "bta"; did you mean "beta"?`) {
			t.Fatalf("grant of a typo: exit %d: %s", code, out)
		}
		if out, code := accountsCLI("grant", aliceUser, "beta"); code != 0 {
			t.Fatalf("grant: %s", out)
		}
		testutil.WaitFor(t, "the grant", 2*time.Second, func() bool {
			_, err := pull(t.Context(), ref(t, st.GatewayHost, devstack.UnlicensedRepo+":"+tag), customer)
			return err == nil
		})

		// 5. So does a revocation.
		if out, code := accountsCLI("token", "revoke", aliceUser); code != 0 {
			t.Fatalf("revoke: %s", out)
		}
		testutil.WaitFor(t, "the revocation", 2*time.Second, func() bool {
			_, err := pull(t.Context(), ref(t, st.GatewayHost, devstack.LicensedRepo+":"+tag), customer)
			return statusOf(err) == http.StatusUnauthorized
		})

		// 6. Who pulled what, from the gateway's access records.
		var report, errb bytes.Buffer
		if code := pullreport.Run([]string{"--format", "json"}, strings.NewReader(logs.String()), &report, &errb); code != 0 {
			t.Fatalf("report: %s", errb.String())
		}
		var rows []pullreport.Row
		if err := json.Unmarshal(report.Bytes(), &rows); err != nil {
			t.Fatal(err)
		}
		pulled := map[string]int{}
		for _, r := range rows {
			if r.Customer != aliceUser || r.Bytes <= 0 || r.First.IsZero() {
				t.Errorf("row %+v", r)
			}
			pulled[r.Repository+":"+r.Reference] += r.Pulls
		}
		if pulled[devstack.LicensedRepo+":"+tag] < 1 || pulled[devstack.UnlicensedRepo+":"+tag] < 1 {
			t.Errorf("report: %+v", rows)
		}
		report.Reset()
		pullreport.Run(nil, strings.NewReader(logs.String()), &report, &errb)
		t.Logf("gateway report:\n%s", report.String())
		if strings.Contains(logs.String(), added.Token) {
			t.Error("the API token is in the services' log")
		}

		// 7. The same from the usage store: the gateway sent its events to
		// the token service (make run's wiring), which stored them in the
		// account database; the vendor reads them without the logs.
		usage := func(args ...string) []accounts.UsageEvent {
			t.Helper()
			var out, errb bytes.Buffer
			if code := tokencli.Run(t.Context(), append([]string{"usage", "-config", config, "--format", "json", "--account", aliceUser}, args...), nil, &out, &errb, tokenserver.AccountsConfig); code != 0 {
				t.Fatalf("usage %v: exit %d: %s", args, code, errb.String())
			}
			var events []accounts.UsageEvent
			if err := json.Unmarshal(out.Bytes(), &events); err != nil {
				t.Fatalf("usage %v: %v: %s", args, err, out.String())
			}
			return events
		}
		outcomes := func(events []accounts.UsageEvent) map[string]int {
			n := map[string]int{}
			for _, e := range events {
				n[e.Outcome+" "+e.Repository]++
			}
			return n
		}
		testutil.WaitFor(t, "the usage events", 10*time.Second, func() bool {
			n := outcomes(usage())
			return n["pull "+devstack.LicensedRepo] >= 1 && n["check "+devstack.LicensedRepo] >= 1 && n["pull "+devstack.UnlicensedRepo] >= 1
		})
		denied := usage("--denied")
		if n := outcomes(denied); n["denied "+devstack.UnlicensedRepo] < 1 {
			t.Errorf("usage --denied: %+v", denied)
		}
		for _, e := range denied {
			if e.Reason != "channel_not_licensed" || e.Agent != "crane" {
				t.Errorf("denied event %+v: want reason channel_not_licensed, agent crane", e)
			}
		}
	})
}

// sqliteInDir puts a SQLite database into the walk-through's directory (a
// PostgreSQL DSN is used as it is).
func sqliteInDir(db *accounts.Config, dir string) string {
	if db.Driver == accounts.DriverSQLite {
		return filepath.Join(dir, "data", "accounts.db")
	}
	return db.DSN
}
