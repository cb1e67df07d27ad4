package tokencli

import (
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// usageFixture stores a few days of events: alice pulls and checks stable,
// bob pulls beta and is refused stable.
func usageFixture(t *testing.T, db *accounts.DB) {
	t.Helper()
	at := func(d time.Duration) time.Time { return t0.Add(-48 * time.Hour).Add(d) }
	ev := func(when time.Time, account, repo, ref, digest, outcome, reason string) accounts.UsageEvent {
		return accounts.UsageEvent{Time: when, Account: account, Repository: repo, Reference: ref, Digest: digest,
			Outcome: outcome, Reason: reason, Client: "203.0.113.0/24", Agent: "docker"}
	}
	if err := db.RecordUsage(t.Context(), []accounts.UsageEvent{
		ev(at(0), "alice@example.com", "stable/app", "1.4", digestA, accounts.UsagePull, ""),
		ev(at(time.Hour), "alice@example.com", "stable/app", "1.4", digestA, accounts.UsageCheck, ""),
		ev(at(25*time.Hour), "alice@example.com", "stable/tool", "2.0", digestB, accounts.UsagePull, ""),
		ev(at(26*time.Hour), "bob@example.com", "beta/app", digestA, digestA, accounts.UsagePull, ""),
		ev(at(27*time.Hour), "bob@example.com", "stable/app", "1.4", "", accounts.UsageDenied, "channel_not_licensed"),
	}); err != nil {
		t.Fatal(err)
	}
}

// tokenserver usage: filters, the three formats, refused attempts apart;
// accounts show: first and last pull, last check.
func TestUsageCommand(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		db := accountstest.Open(t, cfg, accounts.Options{Clock: func() time.Time { return t0 }})
		conf := accountsConfig(t, cfg)
		run := func(args ...string) result {
			t.Helper()
			return runCLI(t, "", nil, append([]string{"usage", "-config", conf}, args...)...)
		}
		if _, _, err := db.Add(t.Context(), "ops", "alice@example.com", []string{"stable"}, time.Time{}, accounts.CreateChannels()); err != nil {
			t.Fatal(err)
		}
		run().want(t, exitOK, "no pulls or checks recorded")
		runCLI(t, "", nil, "accounts", "show", "alice@example.com", "-config", conf).
			want(t, exitOK, "first pull  never", "last pull   never", "last check  never")

		usageFixture(t, db)

		r := run()
		r.want(t, exitOK, "TIME", "OUTCOME", "alice@example.com", "stable/tool", "sha256:bbbbbbbbbbbb ", "bob@example.com", "beta/app", "203.0.113.0/24", "4 pulls and checks")
		if strings.Contains(r.stdout, "channel_not_licensed") || strings.Contains(r.stdout, digestA) {
			t.Errorf("the default report lists a refusal or a whole digest:\n%s", r.stdout)
		}
		r = run("--denied")
		r.want(t, exitOK, "REASON", "bob@example.com", "stable/app", "channel_not_licensed", "1 refused attempts")
		if strings.Contains(r.stdout, "alice@example.com") {
			t.Errorf("--denied lists a pull:\n%s", r.stdout)
		}

		count := func(args ...string) int {
			t.Helper()
			r := run(append(args, "--format", "json")...)
			var events []accounts.UsageEvent
			if err := json.Unmarshal([]byte(r.stdout), &events); err != nil || r.code != exitOK {
				t.Fatalf("%v: %d %v %s %s", args, r.code, err, r.stdout, r.stderr)
			}
			return len(events)
		}
		for _, tc := range []struct {
			args []string
			want int
		}{
			{nil, 4},
			{[]string{"--account", "Alice@Example.com"}, 3},
			{[]string{"--channel", "beta"}, 1},
			{[]string{"--repository", "stable/app"}, 2},
			{[]string{"--digest", digestA}, 3},
			{[]string{"--since", t0.Add(-24 * time.Hour).Format(time.RFC3339)}, 2},
			{[]string{"--since", "36h"}, 2},
			{[]string{"--since", "1d"}, 2},
			{[]string{"--until", "2026-11-27"}, 2},
			{[]string{"--since", "2026-11-28", "--until", "2026-11-28"}, 2},
			{[]string{"--since", "2026-11-29"}, 0},
			{[]string{"--denied", "--channel", "stable"}, 1},
			{[]string{"--denied", "--account", "alice@example.com"}, 0},
		} {
			if got := count(tc.args...); got != tc.want {
				t.Errorf("%v: %d events, want %d", tc.args, got, tc.want)
			}
		}

		r = run("--format", "csv", "--account", "alice@example.com")
		rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil || r.code != exitOK || len(rows) != 4 {
			t.Fatalf("csv: %v %d %q", err, r.code, r.stdout)
		}
		if got := strings.Join(rows[0], ","); got != "time,account,outcome,repository,channel,reference,digest,reason,client,agent" {
			t.Errorf("csv header %q", got)
		}
		if got := strings.Join(rows[1], ","); got != "2026-11-27T10:00:00.000Z,alice@example.com,pull,stable/app,stable,1.4,"+digestA+",,203.0.113.0/24,docker" {
			t.Errorf("csv first row %q", got)
		}
		if rows[2][2] != "check" || rows[3][3] != "stable/tool" {
			t.Errorf("csv rows %q", rows[1:])
		}

		runCLI(t, "", nil, "accounts", "show", "alice@example.com", "-config", conf).want(t, exitOK,
			"first pull  2026-11-27 10:00:00 UTC", "last pull   2026-11-28 11:00:00 UTC", "last check  2026-11-27 11:00:00 UTC")
		r = runCLI(t, "", nil, "accounts", "show", "alice@example.com", "-config", conf, "--json")
		var shown struct {
			accounts.Account
			Usage accounts.AccountUsage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil || shown.Email != "alice@example.com" ||
			!shown.Usage.LastCheck.Equal(t0.Add(-47*time.Hour)) || !shown.Usage.FirstPull.Equal(t0.Add(-48*time.Hour)) {
			t.Errorf("show --json: %v %s", err, r.stdout)
		}
	})
}

// Bad arguments are named in one line before the usage, exit 2; a
// configuration without licenses.sql is an error, exit 1.
func TestUsageCommandArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		line string
	}{
		{[]string{"usage"}, "tokenserver usage: missing -config FILE (or set TOKENSERVER_CONFIG)"},
		{[]string{"usage", "-config", "F", "--format", "xml"}, `tokenserver usage: --format "xml": want table, json or csv`},
		{[]string{"usage", "-config", "F", "--since", "last week"}, `tokenserver usage: --since: "last week" is not a day (2026-11-01), an RFC 3339 time or a while ago (24h, 30d)`},
		{[]string{"usage", "-config", "F", "--since", "2026-11-02", "--until", "2026-11-01"}, "tokenserver usage: --until is not after --since"},
		{[]string{"usage", "-config", "F", "stable"}, `tokenserver usage: unexpected argument "stable"`},
	} {
		r := runCLI(t, "", nil, tc.args...)
		first, rest, _ := strings.Cut(r.stderr, "\n")
		if r.code != exitUsage || first != tc.line || !strings.Contains(rest, "usage: tokenserver usage -config FILE") {
			t.Errorf("%v: exit %d; first line %q, want %q\nstderr: %s", tc.args, r.code, first, tc.line, r.stderr)
		}
	}
	runCLI(t, "", nil, "usage", "-h").want(t, exitOK, "usage: tokenserver usage", "--denied", "--format")
	runCLI(t, "", nil, "-h").want(t, exitOK, "tokenserver usage -config FILE")
	runCLI(t, "", nil, "usage", "-config", "/nonexistent/tokenserver.yaml").want(t, exitFail, "tokenserver usage:")
}
