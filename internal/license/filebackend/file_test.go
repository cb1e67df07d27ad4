package filebackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/registry-gateway/internal/license"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

const (
	aliceToken = "alice-api-token"
	bobToken   = "bob-api-token"
	carolToken = "carol-api-token"
)

func accountsYAML(extra string) string {
	return fmt.Sprintf(`# licences for the demo registry
accounts:
  - username: Alice@Example.com
    token_sha256: %q
    channels: [stable, beta, stable]
  - username: bob@example.com
    token_sha256: %q
    channels: [stable]
    expires: 2026-03-01T12:30:00Z
%s`, license.HashToken(aliceToken), strings.ToUpper(license.HashToken(bobToken)), extra)
}

// pollInterval is the poller's interval in the tests' bubbles: any value
// would do, the time being synctest's.
const pollInterval = 2 * time.Second

// mtimes makes each write's modification time differ from the last, so the
// change is visible even on filesystems with coarse timestamps.
var mtimes atomic.Int64

// writeFile replaces path's content in place and bumps the mtime.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(mtimes.Add(1)) * time.Second)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

type fileFixture struct {
	path  string
	clock *testutil.Clock // licence expiry, against the file's dates
	logs  *testutil.SyncBuffer
	b     *Backend
}

// loadFile writes content and loads it, without running the poller.
func loadFile(t *testing.T, content string) *fileFixture {
	t.Helper()
	fx := &fileFixture{
		path:  filepath.Join(t.TempDir(), "accounts.yaml"),
		clock: newFakeClock(),
		logs:  &testutil.SyncBuffer{},
	}
	writeFile(t, fx.path, content)
	b, err := New(fx.path, Options{
		Clock:        fx.clock.Now,
		Logger:       slog.New(slog.NewTextHandler(fx.logs, nil)),
		PollInterval: pollInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.b = b
	return fx
}

// startFile loads content and runs the poller until the test ends,
// checking that Run returns once its context is cancelled. It runs in a
// synctest bubble: afterPoll moves the poller on.
func startFile(t *testing.T, content string) *fileFixture {
	t.Helper()
	fx := loadFile(t, content)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fx.b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	synctest.Wait() // Run is waiting for its first tick
	return fx
}

// afterPoll lets one poll interval pass, waits until the poller is idle
// again, and fails unless cond holds then: whatever the poller does about
// a change, it has done by its next tick.
func (fx *fileFixture) afterPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	time.Sleep(pollInterval)
	synctest.Wait()
	if !cond() {
		t.Fatalf("%s: not done by the next poll", what)
	}
}

// lookup asks through a fresh license.Cache, which checks the username against the
// account the token belongs to, as the token service does.
func (fx *fileFixture) lookup(user, token string) (license.License, error) {
	c := license.NewCache(fx.b, license.CacheConfig{Clock: fx.clock.Now})
	return c.Lookup(context.Background(), license.Credentials{Username: user, Token: token})
}

func TestFileLookup(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))

		lic, err := fx.lookup("alice@example.com", aliceToken)
		if err != nil {
			t.Fatal(err)
		}
		if lic.Account != "Alice@Example.com" || !slices.Equal(lic.Channels, []string{"beta", "stable"}) || !lic.ExpiresAt.IsZero() {
			t.Errorf("got %+v", lic)
		}
		// E-mail addresses are case-insensitive in practice.
		if _, err := fx.lookup("ALICE@example.COM", aliceToken); err != nil {
			t.Errorf("case-insensitive username: %v", err)
		}
		// Upper-case hex in the file is accepted.
		lic, err = fx.lookup("bob@example.com", bobToken)
		if err != nil || !lic.ExpiresAt.Equal(time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)) {
			t.Errorf("bob: %+v, %v", lic, err)
		}

		for _, c := range []struct{ name, user, token string }{
			{"wrong token", "alice@example.com", bobToken},
			{"unknown user", "mallory@example.com", aliceToken},
			{"empty token", "alice@example.com", ""},
			{"hash instead of token", "alice@example.com", license.HashToken(aliceToken)},
		} {
			if _, err := fx.lookup(c.user, c.token); !errors.Is(err, license.ErrBadCredentials) || errors.Is(err, license.ErrUnavailable) {
				t.Errorf("%s: err = %v, want ErrBadCredentials", c.name, err)
			}
		}

		// Expiry is exclusive: at the instant of expiry the licence is gone.
		fx.clock.Advance(30 * time.Minute)
		if _, err := fx.lookup("bob@example.com", bobToken); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("expired: err = %v, want ErrBadCredentials", err)
		}
		if _, err := fx.lookup("alice@example.com", aliceToken); err != nil {
			t.Errorf("non-expiring: %v", err)
		}
	})
}

func TestFileReturnsCopies(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		lic, _ := fx.lookup("alice@example.com", aliceToken)
		lic.Channels[0] = "everything"
		lic, _ = fx.lookup("alice@example.com", aliceToken)
		if lic.Holds("everything") {
			t.Fatal("caller mutated the backend's account list")
		}
	})
}

func TestFileReload(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		firstLoad := fx.b.Loaded()
		if firstLoad.IsZero() {
			t.Fatal("Loaded is zero after constructor")
		}
		fx.clock.Advance(time.Minute)

		// A valid edit (in place) is picked up without restart.
		writeFile(t, fx.path, accountsYAML(fmt.Sprintf(`  - username: carol@example.com
    token_sha256: %q
    channels: [nightly]
`, license.HashToken(carolToken))))
		fx.afterPoll(t, "carol to appear", func() bool {
			_, err := fx.lookup("carol@example.com", carolToken)
			return err == nil
		})
		if !fx.b.Loaded().After(firstLoad) {
			t.Error("Loaded did not advance")
		}
		if !strings.Contains(fx.logs.String(), "license file reloaded") {
			t.Errorf("no reload log: %s", fx.logs)
		}

		// Broken edits keep the last good list and say why.
		broken := []struct{ name, content, logged string }{
			{"bad YAML", "accounts: [\n  - username: x", "did not find expected"},
			{"bad hex", `accounts: [{username: dave@example.com, token_sha256: "zz", channels: [stable]}]`, "dave@example.com): token_sha256"},
			{"short hash", `accounts: [{username: erin@example.com, token_sha256: "abcd", channels: [stable]}]`, "erin@example.com): token_sha256"},
			{"duplicate user", accountsYAML(fmt.Sprintf("  - username: ALICE@example.com\n    token_sha256: %q\n", license.HashToken("x"))), "duplicate"},
			{"unknown field", accountsYAML("  - username: dave@example.com\n    token: plain\n"), "field token not found"},
			{"typo at top", "acounts: []\n", "field acounts not found"},
			{"empty file", "", "file is empty"},
		}
		var allLogs strings.Builder
		for _, tt := range broken {
			loaded := fx.b.Loaded()
			allLogs.WriteString(fx.logs.String())
			fx.logs.Reset()
			writeFile(t, fx.path, tt.content)
			fx.afterPoll(t, tt.name+" to be logged", func() bool {
				logs := fx.logs.String()
				return strings.Contains(logs, "license file rejected") && strings.Contains(logs, tt.logged)
			})
			if _, err := fx.lookup("carol@example.com", carolToken); err != nil {
				t.Errorf("%s: last good list lost: %v", tt.name, err)
			}
			if !fx.b.Loaded().Equal(loaded) {
				t.Errorf("%s: Loaded changed on a rejected file", tt.name)
			}
		}
		allLogs.WriteString(fx.logs.String())
		logs := allLogs.String()
		for _, secret := range []string{license.HashToken(aliceToken), license.HashToken(carolToken), aliceToken, carolToken} {
			if strings.Contains(strings.ToLower(logs), strings.ToLower(secret)) {
				t.Errorf("logs contain a token or its hash:\n%s", logs)
			}
		}

		// Fixing the file recovers.
		writeFile(t, fx.path, accountsYAML(""))
		fx.afterPoll(t, "carol to be removed", func() bool {
			_, err := fx.lookup("carol@example.com", carolToken)
			return errors.Is(err, license.ErrBadCredentials)
		})
	})
}

// Editors and ConfigMap updates write a new file and rename it over the old
// one; the poller must notice even when size and mtime match.
func TestFileRenameIntoPlace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		info, err := os.Stat(fx.path)
		if err != nil {
			t.Fatal(err)
		}

		// Same length as the original: swap Alice's hash for Carol's.
		next := strings.Replace(accountsYAML(""), license.HashToken(aliceToken), license.HashToken(carolToken), 1)
		if len(next) != len(accountsYAML("")) {
			t.Fatal("test content should keep the size")
		}
		tmp := fx.path + ".tmp"
		if err := os.WriteFile(tmp, []byte(next), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, fx.path); err != nil {
			t.Fatal(err)
		}
		fx.afterPoll(t, "renamed file to be loaded", func() bool {
			_, err := fx.lookup("alice@example.com", carolToken)
			return err == nil
		})
		if _, err := fx.lookup("alice@example.com", aliceToken); !errors.Is(err, license.ErrBadCredentials) {
			t.Errorf("old token still accepted: %v", err)
		}
	})
}

func TestFileRemovedKeepsList(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		if err := os.Remove(fx.path); err != nil {
			t.Fatal(err)
		}
		fx.afterPoll(t, "missing file to be logged", func() bool {
			return strings.Contains(fx.logs.String(), "unreadable")
		})
		if _, err := fx.lookup("alice@example.com", aliceToken); err != nil {
			t.Fatalf("list lost when file vanished: %v", err)
		}
		writeFile(t, fx.path, accountsYAML("  - username: dave@example.com\n    token_sha256: "+license.HashToken("d")+"\n"))
		fx.afterPoll(t, "file to come back", func() bool {
			_, err := fx.lookup("dave@example.com", "d")
			return err == nil
		})
	})
}

func TestFileConstructorErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "missing.yaml"), Options{}); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "accounts:\n  - username: x\n    token_sha256: nothex\n")
	if _, err := New(bad, Options{}); err == nil || !strings.Contains(err.Error(), "hex") {
		t.Errorf("err = %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "accounts: []\n")
	if _, err := New(empty, Options{}); err != nil {
		t.Errorf("an explicitly empty list is valid: %v", err)
	}
}

func TestFileRunTwice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fx := startFile(t, accountsYAML(""))
		fx.afterPoll(t, "first Run to start", func() bool { return fx.b.running.Load() })
		if err := fx.b.Run(t.Context()); err == nil {
			t.Error("second concurrent Run should fail")
		}
	})
}

func TestFileConcurrentLookupsDuringReload(t *testing.T) {
	t.Parallel()
	fx := loadFile(t, accountsYAML(""))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := fx.lookup("alice@example.com", aliceToken); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// The poller's work, done here while the look-ups run.
	for i := range 5 {
		writeFile(t, fx.path, accountsYAML(fmt.Sprintf("# edit %d\n", i)))
		fx.b.poll()
	}
	close(stop)
	wg.Wait()
	if !strings.Contains(fx.logs.String(), "license file reloaded") {
		t.Errorf("no reload: %s", fx.logs)
	}
}

func TestParseAccountsStrict(t *testing.T) {
	t.Parallel()
	h := license.HashToken("t")
	for name, doc := range map[string]string{
		"two documents":   "accounts: []\n---\naccounts: []\n",
		"empty username":  fmt.Sprintf("accounts: [{username: '', token_sha256: %s}]", h),
		"spaces in user":  fmt.Sprintf("accounts: [{username: ' a@b', token_sha256: %s}]", h),
		"empty channel":   fmt.Sprintf("accounts: [{username: a@b, token_sha256: %s, channels: ['']}]", h),
		"channel spaces":  fmt.Sprintf("accounts: [{username: a@b, token_sha256: %s, channels: ['beta ']}]", h),
		"bad expires":     fmt.Sprintf("accounts: [{username: a@b, token_sha256: %s, expires: soon}]", h),
		"comments only":   "# nothing\n",
		"accounts is map": "accounts: {a: b}\n",
	} {
		if _, err := parseAccounts([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	got, err := parseAccounts([]byte(fmt.Sprintf("accounts:\n- {username: a@b, token_sha256: %s, expires: 2027-12-31}\n", h)))
	if err != nil || !got["a@b"].expires.Equal(time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("date-only expiry: %v, %v", got, err)
	}
}

func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte(accountsYAML("")))
	f.Add([]byte("accounts: []\n"))
	f.Add([]byte("accounts: [{username: a, token_sha256: zz}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		accounts, err := parseAccounts(data)
		if err != nil {
			return
		}
		// Look-ups go by token: no token may name two accounts.
		owners := map[[32]byte]string{}
		for key, a := range accounts {
			if other, dup := owners[a.tokenHash]; dup {
				t.Fatalf("accounts %q and %q share a token", other, key)
			}
			owners[a.tokenHash] = key
		}
		for key, a := range accounts {
			if key != strings.ToLower(a.username) || a.username == "" {
				t.Fatalf("bad key %q for %q", key, a.username)
			}
			if !slices.IsSorted(a.channels) || slices.Contains(a.channels, "") {
				t.Fatalf("channels not normalised: %q", a.channels)
			}
		}
	})
}
