package tokencli

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/tokenserver/admin"
)

// remoteEnv is a token service's admin API over HTTPS on a real database,
// with a write and a read admin key in files.
type remoteEnv struct {
	db                        *accounts.DB
	url, cacert               string
	writeKey, readKey         string
	writeKeyFile, readKeyFile string
}

func newRemoteEnv(t *testing.T, cfg *accounts.Config) *remoteEnv {
	t.Helper()
	db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return t0 }})
	_, wk, err := db.AddAdminKey(t.Context(), "test", "crm", accounts.ScopeWrite, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	_, rk, err := db.AddAdminKey(t.Context(), "test", "support", accounts.ScopeRead, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(admin.Handler(admin.Options{DB: db, Clock: func() time.Time { return t0 }, Log: slog.New(slog.DiscardHandler)}))
	// The handshakes a test fails on purpose (no --cacert) are not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	e := &remoteEnv{db: db, url: srv.URL, writeKey: wk, readKey: rk,
		cacert:       filepath.Join(dir, "ca.crt"),
		writeKeyFile: filepath.Join(dir, "write.key"),
		readKeyFile:  filepath.Join(dir, "read.key"),
	}
	write := func(path, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(e.cacert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	write(e.writeKeyFile, wk+"\n")
	write(e.readKeyFile, "  "+rk+"\n\n")
	return e
}

// flags are the flags of the remote mode with keyFile.
func (e *remoteEnv) flags(keyFile string) []string {
	return []string{"--server", e.url, "--admin-key-file", keyFile, "--cacert", e.cacert}
}

// secrets are the parts of an output that differ between two databases
// by chance: API tokens and their prefixes.
var secrets = regexp.MustCompile(accounts.TokenPrefix + `[A-Za-z0-9_-]+`)

// Every accounts command the admin API serves prints the same and exits
// the same run locally (-config) and remotely (--server), each on a fresh
// database of the same driver with the same clock.
func TestAccountsRemoteSameAsLocal(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		remote := newRemoteEnv(t, cfg)
		var localCfg *accounts.Config
		if cfg.Driver == accounts.DriverSQLite {
			localCfg = accountstest.SQLite(t)
		} else {
			localCfg = accountstest.Shared(t).NewDatabase(t)
		}
		accountstest.Open(t, localCfg, accounts.Options{})
		conf := accountsConfig(t, localCfg)
		env := map[string]string{"USER": "vendor-ops"}

		steps := [][]string{
			{"channels", "list"},
			{"channels", "list", "--json"},
			{"list"},
			{"list", "--json"},
			{"add", "alice@example.com", "--channels", "stable"},
			{"channels", "add", "stable", "--description", "Released builds"},
			{"channels", "add", "stable"},
			{"channels", "add", "Beta"},
			{"channels", "add", "beta", "--json"},
			{"channels", "list"},
			{"channels", "list", "--json"},
			{"add", "alice@example.com", "--channels", "stable,beta", "--expires", "2027-06-30"},
			{"add", "ALICE@example.com", "--channels", "stable"},
			{"add", "bob@example.com", "--channels", "stabel"},
			{"add", "bob@example.com", "--channels", "Stable"},
			{"add", "bob@example.com", "--channels", "stable", "--expires", "2020-01-01"},
			{"add", "not-an-email", "--channels", "stable"},
			{"add", "bob@example.com", "--channels", "stable,edge", "--create", "--json"},
			{"add", "carol@example.com", "--channels", "beta", "--json"},
			{"list"},
			{"list", "--json"},
			{"show", "alice@example.com"},
			{"show", "Alice@Example.com", "--json"},
			{"show", "nobody@example.com"},
			{"show", "not-an-email"},
			{"grant", "alice@example.com", "stabel"},
			{"grant", "alice@example.com", "lts-2025"},
			{"grant", "alice@example.com", "zeta", "stable", "lts-2025", "stabel"},
			{"grant", "alice@example.com", "stable", "edge"},
			{"grant", "alice@example.com", "nightly", "--create"},
			{"grant", "nobody@example.com", "beta"},
			{"grant", "alice@example.com", "Bad"},
			{"ungrant", "alice@example.com", "nightly"},
			{"ungrant", "alice@example.com", "nightly"},
			{"ungrant", "nobody@example.com", "beta"},
			{"show", "alice@example.com", "--json"},
			{"expire", "alice@example.com", "2028-01-31"},
			{"expire", "alice@example.com", "never"},
			{"expire", "alice@example.com", "2020-01-01"},
			{"expire", "alice@example.com", "yesterday"},
			{"expire", "nobody@example.com", "2028-01-31"},
			{"token", "add", "alice@example.com"},
			{"token", "add", "alice@example.com", "--json"},
			{"token", "add", "alice@example.com", "--name", "ci"},
			{"token", "add", "nobody@example.com"},
			{"token", "revoke", "alice@example.com"},
			{"token", "revoke", "alice@example.com", "2"},
			{"token", "revoke", "alice@example.com", "4"},
			{"token", "revoke", "alice@example.com", "4", "--json"},
			{"token", "revoke", "alice@example.com", "99"},
			{"token", "rotate", "alice@example.com", "1", "--json"},
			{"token", "rotate", "bob@example.com"},
			{"token", "rotate", "nobody@example.com"},
			{"show", "alice@example.com"},
			{"disable", "alice@example.com"},
			{"disable", "alice@example.com"},
			{"show", "alice@example.com", "--json"},
			{"enable", "alice@example.com"},
			{"enable", "alice@example.com"},
			{"enable", "nobody@example.com"},
			{"channels", "remove", "edge"},
			{"channels", "remove", "stabel"},
			{"channels", "remove", "edge", "--force", "--json"},
			{"channels", "remove", "lts-2025"},
			{"channels", "remove", "nightly"},
			{"delete", "bob@example.com"},
			{"delete", "bob@example.com", "--yes"},
			{"delete", "bob@example.com", "--yes"},
			{"list"},
			{"list", "--json"},
			{"channels", "list"},
		}
		for _, step := range steps {
			local := runCLI(t, "", env, append([]string{"accounts"}, append(step, "-config", conf)...)...)
			rem := runCLI(t, "", env, append([]string{"accounts"}, append(step, remote.flags(remote.writeKeyFile)...)...)...)
			name := strings.Join(step, " ")
			if local.code != rem.code {
				t.Errorf("%s: exit %d locally, %d remotely\nlocal: %s%s\nremote: %s%s", name, local.code, rem.code, local.stdout, local.stderr, rem.stdout, rem.stderr)
			}
			if l, r := secrets.ReplaceAllString(local.stdout, "rgw_X"), secrets.ReplaceAllString(rem.stdout, "rgw_X"); l != r {
				t.Errorf("%s: stdout differs\nlocal:\n%s\nremote:\n%s", name, l, r)
			}
			if local.stderr != rem.stderr {
				t.Errorf("%s: stderr differs\nlocal:\n%s\nremote:\n%s", name, local.stderr, rem.stderr)
			}
			if strings.Contains(rem.stdout+rem.stderr, remote.writeKey) {
				t.Errorf("%s: the admin key is printed", name)
			}
		}

		// The audit names the admin key as the actor of every change made
		// through the API.
		r := runCLI(t, "", nil, append([]string{"accounts", "audit", "alice@example.com"}, remote.flags(remote.readKeyFile)...)...)
		r.want(t, exitOK, "WHEN", "crm", "grant", "token.rotate", "disable")
		if strings.Contains(r.stdout, "bob@example.com") {
			t.Errorf("audit of alice shows bob:\n%s", r.stdout)
		}
	})
}

// A token is named by its prefix remotely as locally, and the refusals of
// the remote mode each say in one line what is wrong.
func TestAccountsRemoteErrors(t *testing.T) {
	t.Parallel()
	remote := newRemoteEnv(t, accountstest.SQLite(t))
	run := func(keyFile string, args ...string) result {
		t.Helper()
		return runCLI(t, "", nil, append([]string{"accounts"}, append(args, remote.flags(keyFile)...)...)...)
	}
	run(remote.writeKeyFile, "channels", "add", "stable").want(t, exitOK)
	r := run(remote.writeKeyFile, "add", "alice@example.com", "--channels", "stable")
	r.want(t, exitOK, "created alice@example.com")
	token := secrets.FindString(r.stdout)
	run(remote.writeKeyFile, "token", "add", "alice@example.com").want(t, exitOK)
	run(remote.writeKeyFile, "token", "revoke", "alice@example.com", token[:12]).want(t, exitOK, "revoked token 1 ("+token[:12])
	run(remote.writeKeyFile, "grant", "alice@example.com", "stabel").want(t, exitNotFound,
		`tokenserver accounts grant: unknown channel "stabel"; did you mean "stable"? (known channels: stable)`, "nothing changed; --create")

	// The read key reads, and may not write.
	run(remote.readKeyFile, "show", "alice@example.com").want(t, exitOK, "alice@example.com")
	r = run(remote.readKeyFile, "disable", "alice@example.com")
	r.want(t, exitFail, "tokenserver accounts disable: admin key support has the read scope; this needs write\n")
	run(remote.writeKeyFile, "show", "alice@example.com").want(t, exitOK, "state       active", "first pull  never")

	// A key the server does not know.
	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("rgwa_notakey\n"), 0o600)
	r = run(bad, "list")
	r.want(t, exitFail, "tokenserver accounts list: the server refused the admin key")
	if strings.Count(r.stderr, "\n") != 1 || strings.Contains(r.stderr, "rgwa_notakey") {
		t.Errorf("bad key: want one line without the key:\n%s", r.stderr)
	}
	empty := filepath.Join(t.TempDir(), "empty.key")
	os.WriteFile(empty, []byte("\n"), 0o600)
	run(empty, "list").want(t, exitFail, "empty.key is empty")
	run(filepath.Join(t.TempDir(), "missing.key"), "list").want(t, exitFail, "--admin-key-file", "missing.key")

	// A key file every user can read works, with a warning.
	open := filepath.Join(t.TempDir(), "open.key")
	os.WriteFile(open, []byte(remote.writeKey), 0o644)
	os.Chmod(open, 0o644)
	r = run(open, "list")
	r.want(t, exitOK, "alice@example.com")
	if want := "is readable by every user"; !strings.Contains(r.stderr, want) && !isWindows() {
		t.Errorf("open key file: no warning:\n%s", r.stderr)
	}

	// -config and --server, both.
	r = run(remote.writeKeyFile, "list", "-config", "x.yaml")
	r.want(t, exitUsage, "tokenserver accounts list: -config and --server are mutually exclusive")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("-config and --server: want one line:\n%s", r.stderr)
	}
	// TOKENSERVER_CONFIG is a default only: --server wins.
	runCLI(t, "", map[string]string{"TOKENSERVER_CONFIG": "x.yaml"}, append([]string{"accounts", "list"}, remote.flags(remote.writeKeyFile)...)...).want(t, exitOK, "alice@example.com")

	// The commands the API has no route for refuse --server, saying why.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"migrate", nil}, {"export", []string{"out.json"}}, {"import", []string{"in.json"}},
		{"admin-key add", []string{"k", "--scope", "read"}}, {"admin-key list", nil}, {"admin-key revoke", []string{"crm"}},
	} {
		args := append(strings.Fields(tc.name), tc.args...)
		r := run(remote.writeKeyFile, args...)
		r.want(t, exitUsage, "tokenserver accounts "+tc.name+": does not work with --server: ")
		if strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: want one line:\n%s", args, r.stderr)
		}
	}
	run(remote.writeKeyFile, "admin-key", "list").want(t, exitUsage, "an admin key cannot list keys")

	// The flags of the remote mode go together.
	runCLI(t, "", nil, "accounts", "list", "--server", remote.url).want(t, exitUsage, "--server needs --admin-key-file")
	runCLI(t, "", nil, "accounts", "list", "-config", "x.yaml", "--admin-key-file", remote.writeKeyFile).want(t, exitUsage, "go with --server")
	run(remote.writeKeyFile, "grant", "alice@example.com", "stable", "--actor", "me").want(t, exitUsage, "--actor does not apply with --server")
	runCLI(t, "", nil, "accounts", "list", "--server", "http://tokens.example.com", "--admin-key-file", remote.writeKeyFile).want(t, exitUsage, "only over https")
	runCLI(t, "", nil, "accounts", "list", "--server", "tokens.example.com", "--admin-key-file", remote.writeKeyFile).want(t, exitUsage, "want the token service's admin URL")

	// Without the server's CA, TLS fails: the certificate is verified.
	runCLI(t, "", nil, "accounts", "list", "--server", remote.url, "--admin-key-file", remote.writeKeyFile).want(t, exitFail, "certificate")
}

func isWindows() bool { return os.PathSeparator == '\\' }

// A server that is down, or does not answer, fails the command in bounded
// time with one line.
func TestAccountsRemoteServerDown(t *testing.T) {
	t.Parallel()
	remote := newRemoteEnv(t, accountstest.SQLite(t))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + l.Addr().String()
	l.Close()
	start := time.Now()
	r := runCLI(t, "", nil, "accounts", "list", "--server", down, "--admin-key-file", remote.writeKeyFile)
	r.want(t, exitFail, "tokenserver accounts list: the admin API:", "connection refused")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("server down: want one line:\n%s", r.stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a server that is down held the command %v", d)
	}

	// Accepts, never answers: the client's timeout (5 s in the tests)
	// ends it.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start = time.Now()
	r = runCLI(t, "", nil, "accounts", "list", "--server", "https://"+hang.Addr().String(), "--admin-key-file", remote.writeKeyFile)
	r.want(t, exitFail, "tokenserver accounts list: the admin API:")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a server that does not answer held the command %v", d)
	}
}

// A change goes ahead only on the account as read: a change someone made
// between the GET and the PATCH is a conflict (exit 4), not overwritten.
func TestAccountsRemoteIfMatch(t *testing.T) {
	t.Parallel()
	remote := newRemoteEnv(t, accountstest.SQLite(t))
	ctx := context.Background()
	if _, _, err := remote.db.Add(ctx, "test", "alice@example.com", []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
		t.Fatal(err)
	}
	e := &env{now: func() time.Time { return t0 }, client: &http.Client{Timeout: 5 * time.Second}}
	if err := e.trustCA(remote.cacert); err != nil {
		t.Fatal(err)
	}
	s, err := newRemoteStore(remote.url, remote.writeKey, e.client, e.now)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else disables the account after this client's GET.
	err = s.patch(ctx, "alice@example.com", func(accounts.Account) error {
		return remote.db.SetState(ctx, "other", "alice@example.com", accounts.StateDisabled)
	}, struct {
		Expires string `json:"expires"`
	}{"2028-01-01"})
	if !errors.Is(err, accounts.ErrConflict) || !strings.Contains(err.Error(), "changed by someone else") {
		t.Fatalf("stale If-Match: %v", err)
	}
	if a, showErr := remote.db.Show(ctx, "alice@example.com"); showErr != nil || !a.Expires.IsZero() || a.State != accounts.StateDisabled {
		t.Errorf("after the refused change: %+v %v", a, showErr)
	}
	c := &accountsCmd{env: &env{stderr: &strings.Builder{}}, name: "expire"}
	if code := c.fail(err); code != exitConflict {
		t.Errorf("exit %d, want %d", code, exitConflict)
	}
}

// Listings are read a page at a time, to the last.
func TestAccountsRemotePaging(t *testing.T) {
	t.Parallel()
	remote := newRemoteEnv(t, accountstest.SQLite(t))
	ctx := context.Background()
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"} {
		if _, _, err := remote.db.Add(ctx, "test", email, []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{now: func() time.Time { return t0 }, client: &http.Client{Timeout: 5 * time.Second}}
	if err := e.trustCA(remote.cacert); err != nil {
		t.Fatal(err)
	}
	s, err := newRemoteStore(remote.url, remote.readKey, e.client, e.now)
	if err != nil {
		t.Fatal(err)
	}
	s.pageSize = 2
	got, err := s.List(ctx)
	want, _ := remote.db.List(ctx)
	if err != nil || len(got) != 5 || len(want) != 5 {
		t.Fatalf("List: %d accounts, %v", len(got), err)
	}
	for i := range got {
		if got[i].Email != want[i].Email || !slices.Equal(got[i].Channels, want[i].Channels) {
			t.Errorf("account %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	audit, err := s.Audit(ctx, "")
	wantAudit, _ := remote.db.Audit(ctx, "")
	if err != nil || len(audit) != len(wantAudit) || len(audit) < 7 {
		t.Errorf("Audit: %d rows, want %d: %v", len(audit), len(wantAudit), err)
	}
	audit, err = s.Audit(ctx, "C@example.com")
	if err != nil || len(audit) != 1 || audit[0].Account != "c@example.com" || audit[0].Action != "add" {
		t.Errorf("Audit of c: %+v %v", audit, err)
	}
}
