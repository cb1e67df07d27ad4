package accountstest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/acme/registry-gateway/internal/accounts"
)

// recorder is a testing.TB that records the first Skip or Fatal instead of
// ending the goroutine (skipOrFail relies on Skipf not returning).
type recorder struct {
	testing.TB
	outcome string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, a ...any) {
	if r.outcome == "" {
		r.outcome = "skip: " + fmt.Sprintf(format, a...)
	}
}
func (r *recorder) Fatal(a ...any) {
	if r.outcome == "" {
		r.outcome = "fatal: " + fmt.Sprint(a...)
	}
}

// A missing server skips outside CI; a system where this package cannot
// run the server skips unless REQUIRE_POSTGRES=1; anything else fails.
func TestSkipOrFail(t *testing.T) {
	unsupported := fmt.Errorf("%w on plan9", errUnsupported)
	for _, tc := range []struct {
		err         error
		ci, require string
		want        string
	}{
		{ErrNoPostgres, "", "", "skip: " + ErrNoPostgres.Error() + ": apt-get install postgresql"},
		{ErrNoPostgres, "true", "", "fatal: "},
		{ErrNoPostgres, "", "1", "fatal: "},
		{unsupported, "true", "", "skip: " + unsupported.Error()},
		{unsupported, "", "1", "fatal: "},
		{errors.New("initdb: exit status 1"), "", "", "fatal: initdb"},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("REQUIRE_POSTGRES", tc.require)
		r := &recorder{TB: t}
		skipOrFail(r, tc.err)
		if !strings.HasPrefix(r.outcome, tc.want) {
			t.Errorf("%v with CI=%q REQUIRE_POSTGRES=%q: %q, want %q…", tc.err, tc.ci, tc.require, r.outcome, tc.want)
		}
	}
}

// Linux runs the server as nobody when the tests run as root; elsewhere
// that is refused by name, and on Windows the server is not run at all.
func TestPlatform(t *testing.T) {
	as, err := nobody()
	if runtime.GOOS == "linux" {
		if err != nil || as != (ids{65534, 65534}) {
			t.Errorf("nobody() = %v, %v", as, err)
		}
	} else if !errors.Is(err, errUnsupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Errorf("nobody() on %s: %v", runtime.GOOS, err)
	}
	err = platformSupported()
	if runtime.GOOS == "windows" {
		if !errors.Is(err, errUnsupported) || !strings.Contains(err.Error(), "windows") {
			t.Errorf("platformSupported() = %v", err)
		}
	} else if err != nil {
		t.Errorf("platformSupported() = %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Each driver's database opens and migrates: on Linux as root the shared
// PostgreSQL server runs as nobody; elsewhere it skips as above.
func TestDrivers(t *testing.T) {
	var ran []string
	Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		ran = append(ran, cfg.Driver)
		Open(t, cfg, accounts.Options{})
	})
	if len(ran) == 0 {
		t.Error("Drivers ran nothing")
	}
}
