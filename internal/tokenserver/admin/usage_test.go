package admin

import (
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/testsupport/accountstest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func usageEvent(at time.Time, account, repository, outcome string) accounts.UsageEvent {
	e := accounts.UsageEvent{Time: at, Account: account, Repository: repository, Reference: "1.0", Outcome: outcome, Agent: "docker", Client: "203.0.113.0/24"}
	if outcome == accounts.UsageDenied {
		e.Reason = "channel_not_licensed"
	} else {
		e.Digest = testDigest
	}
	return e
}

type usagePage struct {
	Items      []accounts.UsageEvent `json:"items"`
	NextCursor string                `json:"next_cursor"`
}

// outcomes lists the events' "account outcome repository".
func outcomes(events []accounts.UsageEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Account+" "+e.Outcome+" "+e.Repository)
	}
	return out
}

func TestUsage(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		if _, _, err := e.db.Add(t.Context(), "test", "alice@example.com", []string{"stable"}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		// No usage yet: the summary is empty.
		a := e.call("GET", Prefix+"/accounts/alice@example.com", e.readKey, "").want(t, http.StatusOK, `"usage":{}`)
		tag := a.header.Get("ETag")

		if err := e.db.RecordUsage(t.Context(), []accounts.UsageEvent{
			usageEvent(t0.Add(-4*time.Hour), "alice@example.com", "stable/app", accounts.UsagePull),
			usageEvent(t0.Add(-3*time.Hour), "alice@example.com", "stable/app", accounts.UsageCheck),
			usageEvent(t0.Add(-2*time.Hour), "bob@example.com", "beta/tool", accounts.UsagePull),
			usageEvent(t0.Add(-90*time.Minute), "alice@example.com", "beta/tool", accounts.UsageDenied),
			usageEvent(t0.Add(-time.Hour), "=cmd@example.com", "stable/app", accounts.UsagePull),
		}); err != nil {
			t.Fatal(err)
		}

		// The account shows its first and last pull and last check; a pull
		// changes no ETag, so an admin's If-Match still holds.
		a = e.call("GET", Prefix+"/accounts/alice@example.com", e.readKey, "").want(t, http.StatusOK,
			`"first_pull":"2026-12-01T08:00:00Z"`, `"last_pull":"2026-12-01T08:00:00Z"`, `"last_check":"2026-12-01T09:00:00Z"`)
		if got := a.header.Get("ETag"); got != tag {
			t.Errorf("ETag %s after a pull, was %s", got, tag)
		}

		list := func(query string) []string {
			t.Helper()
			return outcomes(decode[usagePage](t, e.call("GET", Prefix+"/usage"+query, e.readKey, "").want(t, http.StatusOK)).Items)
		}
		want := func(query string, want ...string) {
			t.Helper()
			if got := list(query); !slices.Equal(got, want) {
				t.Errorf("usage%s:\n got %q\nwant %q", query, got, want)
			}
		}
		// Pulls and checks by default, oldest first; refused attempts only
		// when asked.
		want("", "alice@example.com pull stable/app", "alice@example.com check stable/app", "bob@example.com pull beta/tool", "=cmd@example.com pull stable/app")
		want("?outcome=denied", "alice@example.com denied beta/tool")
		want("?outcome=pull,denied&outcome=check&account=ALICE@example.com",
			"alice@example.com pull stable/app", "alice@example.com check stable/app", "alice@example.com denied beta/tool")
		want("?outcome=check", "alice@example.com check stable/app")
		want("?channel=beta", "bob@example.com pull beta/tool")
		want("?repository=stable/app&outcome=pull", "alice@example.com pull stable/app", "=cmd@example.com pull stable/app")
		want("?digest="+testDigest+"&account=bob@example.com", "bob@example.com pull beta/tool")
		want("?digest=sha256:none")
		want("?since=2026-12-01T09:00:00Z&until="+url.QueryEscape("2026-12-01T11:00:00+01:00"), "alice@example.com check stable/app")
		want("?format=json&account=nobody@example.com")

		// Paging in (time, id) order, without a gap or a repeat.
		var got []string
		cursor := ""
		for range 10 {
			p := decode[usagePage](t, e.call("GET", Prefix+"/usage?limit=2&outcome=pull,check,denied&cursor="+cursor, e.readKey, "").want(t, http.StatusOK))
			got = append(got, outcomes(p.Items)...)
			if p.NextCursor == "" {
				break
			}
			if len(p.Items) != 2 {
				t.Errorf("a page of %d events has a next cursor", len(p.Items))
			}
			cursor = p.NextCursor
		}
		if len(got) != 5 || got[3] != "alice@example.com denied beta/tool" {
			t.Errorf("paged: %q", got)
		}

		// The error paths name the parameter at fault and change nothing.
		for _, c := range []struct{ query, field string }{
			{"?since=2026-12-01", "since"},
			{"?until=yesterday", "until"},
			{"?since=2026-12-01T10:00:00Z&until=2026-12-01T10:00:00Z", "until"},
			{"?outcome=pulls", "outcome"},
			{"?outcome=pull,", "outcome"},
			{"?cursor=bm90IGEgY3Vyc29y", "cursor"},
			{"?cursor=%21%21", "cursor"},
			{"?limit=0", "limit"},
			{"?limit=1001", "limit"},
			{"?limit=ten", "limit"},
			{"?format=xml", "format"},
			{"?format=csv&limit=10", "limit"},
			{"?account=" + strings.Repeat("a", 321), "account"},
		} {
			e.call("GET", Prefix+"/usage"+c.query, e.readKey, "").problem(t, http.StatusUnprocessableEntity, "validation", c.field)
		}
		e.call("GET", Prefix+"/usage", "", "").problem(t, http.StatusUnauthorized, "unauthorized")
		e.call("POST", Prefix+"/usage", e.writeKey, "{}").problem(t, http.StatusMethodNotAllowed, "method-not-allowed")
	})
}

func TestUsageCSV(t *testing.T) {
	t.Parallel()
	accountstest.Drivers(t, func(t *testing.T, cfg *accounts.Config) {
		e := newEnv(t, cfg, nil)
		// More than a page of the store, so that the export streams
		// several.
		const n = 2*maxUsagePage + 7
		start := t0.Add(-48 * time.Hour)
		var batch []accounts.UsageEvent
		for i := range n {
			account := "alice@example.com"
			if i == 5 {
				account = "=hyperlink(1)@example.com"
			}
			outcome := accounts.UsagePull
			if i%3 == 1 {
				outcome = accounts.UsageCheck
			}
			batch = append(batch, usageEvent(start.Add(time.Duration(i)*time.Second), account, "stable/app", outcome))
			if len(batch) == accounts.MaxUsageBatch || i == n-1 {
				if err := e.db.RecordUsage(t.Context(), batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
		if err := e.db.RecordUsage(t.Context(), []accounts.UsageEvent{usageEvent(t0, "bob@example.com", "beta/tool", accounts.UsageDenied)}); err != nil {
			t.Fatal(err)
		}

		read := func(a answer) [][]string {
			t.Helper()
			a.want(t, http.StatusOK)
			if ct := a.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			rows, err := csv.NewReader(strings.NewReader(string(a.body))).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows[0], accounts.UsageCSVHeader) {
				t.Errorf("header %q", rows[0])
			}
			return rows[1:]
		}
		since := "2026-11-29T00:00:00Z"
		until := "2026-12-01T00:00:00Z"
		a := e.call("GET", Prefix+"/usage?format=csv&since="+since+"&until="+until, e.readKey, "")
		if cd := a.header.Get("Content-Disposition"); cd != `attachment; filename="usage-from-20261129T000000Z-to-20261201T000000Z.csv"` {
			t.Errorf("Content-Disposition %q", cd)
		}
		rows := read(a)
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		for i, r := range rows {
			ts := start.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000Z07:00")
			if r[0] != ts || r[4] != "stable" || r[6] != testDigest || r[9] != "docker" {
				t.Fatalf("row %d: %q", i, r)
			}
		}
		// A cell a spreadsheet would run is quoted.
		if rows[5][1] != "'=hyperlink(1)@example.com" {
			t.Errorf("account cell %q", rows[5][1])
		}

		// Accept: text/csv asks for it too, with the same filters; ?format
		// wins over Accept.
		rows = read(e.call("GET", Prefix+"/usage?outcome=denied", e.readKey, "", "Accept", "text/csv, application/json;q=0.5"))
		if len(rows) != 1 || fmt.Sprint(rows[0][1:]) != "[bob@example.com denied beta/tool beta 1.0  channel_not_licensed 203.0.113.0/24 docker]" {
			t.Errorf("denied rows %q", rows)
		}
		p := decode[usagePage](t, e.call("GET", Prefix+"/usage?outcome=denied&format=json", e.readKey, "", "Accept", "text/csv").want(t, http.StatusOK))
		if len(p.Items) != 1 {
			t.Errorf("json: %+v", p)
		}
		p = decode[usagePage](t, e.call("GET", Prefix+"/usage?outcome=denied", e.readKey, "", "Accept", "application/json, text/csv;q=0").want(t, http.StatusOK))
		if len(p.Items) != 1 {
			t.Errorf("json: %+v", p)
		}
		// From a cursor on.
		p = decode[usagePage](t, e.call("GET", Prefix+"/usage?limit=1000", e.readKey, "").want(t, http.StatusOK))
		rows = read(e.call("GET", Prefix+"/usage?format=csv&cursor="+p.NextCursor, e.readKey, ""))
		if len(rows) != n-1000 {
			t.Errorf("%d rows after the first page, want %d", len(rows), n-1000)
		}
	})
}

// An export past its bound is cut off mid-answer, never ended as if it
// were whole.
func TestUsageCSVBound(t *testing.T) {
	t.Parallel()
	db := accountstest.Open(t, accountstest.SQLite(t), accounts.Options{Clock: func() time.Time { return t0 }})
	_, key, err := db.AddAdminKey(t.Context(), "test", "support", accounts.ScopeRead, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var events []accounts.UsageEvent
	for i := range 5 {
		events = append(events, usageEvent(t0.Add(-time.Duration(i)*time.Minute), "alice@example.com", "stable/app", accounts.UsagePull))
	}
	if err := db.RecordUsage(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.SyncBuffer{}
	a := newAPI(Options{DB: db, Log: slog.New(slog.NewTextHandler(logs, nil))})
	a.csvRows = 3
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	get := func(query string) ([]byte, error) {
		req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+Prefix+"/usage"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if body, err := get("?format=csv"); err == nil {
		t.Errorf("an export over its bound ended as if whole:\n%s", body)
	}
	if !strings.Contains(logs.String(), "cut at its bound") {
		t.Errorf("log: %s", logs)
	}
	// At the bound, it is whole.
	body, err := get("?format=csv&since=" + url.QueryEscape(t0.Add(-2*time.Minute).Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll(); err != nil || len(rows) != 4 {
		t.Errorf("rows %q, %v", rows, err)
	}
}
