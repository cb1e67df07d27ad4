package tokencli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

const usageSynopsis = `-config FILE [--account EMAIL] [--channel C] [--repository R] [--digest D]
       [--since T] [--until T] [--denied] [--format table|json|csv]`

// usageReport runs `tokenserver usage`: who pulled what, when, from the
// usage store of the account database (the gateway's events, stored by
// the token service's intake).
func (e *env) usageReport(ctx context.Context, args []string) int {
	fs := e.newFlagSet("usage", usageSynopsis)
	config := fs.String("config", e.getenv("TOKENSERVER_CONFIG"), "the token service's configuration `file`")
	account := fs.String("account", "", "only this account (`e-mail`)")
	channel := fs.String("channel", "", "only repositories of this `channel`")
	repository := fs.String("repository", "", "only this `repository` (stable/app)")
	digest := fs.String("digest", "", "only this manifest `digest`")
	since := fs.String("since", "", "from this `time` on: 2026-11-01, an RFC 3339 time, or a while ago (24h, 30d)")
	until := fs.String("until", "", "before this `time`: a day (included), an RFC 3339 time (excluded), or a while ago")
	denied := fs.Bool("denied", false, "list the refused attempts (a channel the account does not hold) instead of pulls and checks")
	format := fs.String("format", "table", "table, json or csv")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	problem := ""
	switch {
	case len(pos) > 0:
		problem = fmt.Sprintf("unexpected argument %q", pos[0])
	case *format != "table" && *format != "json" && *format != "csv":
		problem = fmt.Sprintf("--format %q: want table, json or csv", *format)
	case *config == "":
		problem = "missing -config FILE (or set TOKENSERVER_CONFIG)"
	}
	q := accounts.UsageQuery{Account: *account, Channel: *channel, Repository: *repository, Digest: *digest}
	now := e.now()
	if problem == "" && *since != "" {
		if q.Since, err = parseUsageTime(*since, now, false); err != nil {
			problem = "--since: " + err.Error()
		}
	}
	if problem == "" && *until != "" {
		if q.Until, err = parseUsageTime(*until, now, true); err != nil {
			problem = "--until: " + err.Error()
		}
	}
	if problem == "" && !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		problem = "--until is not after --since"
	}
	if problem != "" {
		fmt.Fprintf(e.stderr, "tokenserver usage: %s\n\n", problem)
		fs.Usage()
		return exitUsage
	}
	if *denied {
		q.Outcomes = []string{accounts.UsageDenied}
	}

	fail := func(err error) int {
		fmt.Fprintf(e.stderr, "tokenserver usage: %v\n", err)
		return exitFail
	}
	if e.accountsConfig == nil {
		return fail(errors.New("no loader of the token service's configuration"))
	}
	cfg, err := e.accountsConfig(*config)
	if err != nil {
		return fail(err)
	}
	if cfg == nil {
		return fail(fmt.Errorf("%s: licenses.sql is not configured (usage is stored in the account database of the sql licence backend)", *config))
	}
	db, err := accounts.Open(ctx, cfg, accounts.Options{Clock: e.now})
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	if err := db.CheckSchema(ctx); err != nil {
		return fail(err)
	}
	events, err := db.Usage(ctx, q)
	if err != nil {
		return fail(err)
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(events)
	case "csv":
		err = writeUsageCSV(e, events)
	default:
		err = writeUsageTable(e, events, *denied)
	}
	if err != nil {
		return fail(err)
	}
	return exitOK
}

// writeUsageCSV writes events as the admin API's CSV export does.
func writeUsageCSV(e *env, events []accounts.UsageEvent) error {
	w, err := accounts.NewUsageCSVWriter(e.stdout)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if err := w.Write(ev); err != nil {
			return err
		}
	}
	return w.Flush()
}

func writeUsageTable(e *env, events []accounts.UsageEvent, denied bool) error {
	if len(events) == 0 {
		if denied {
			fmt.Fprintln(e.stdout, "no refused attempts recorded for these filters")
		} else {
			fmt.Fprintln(e.stdout, "no pulls or checks recorded for these filters (refused attempts: --denied)")
		}
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if denied {
		fmt.Fprintln(w, "TIME\tACCOUNT\tREPOSITORY\tREFERENCE\tREASON\tAGENT\tCLIENT")
	} else {
		fmt.Fprintln(w, "TIME\tACCOUNT\tOUTCOME\tREPOSITORY\tREFERENCE\tDIGEST\tAGENT\tCLIENT")
	}
	for _, ev := range events {
		client := ev.Client
		if client == "" {
			client = "-"
		}
		ref := ev.Reference
		if strings.Contains(ref, ":") { // a digest
			ref = shortDigest(ref)
		}
		if denied {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(ev.Time), ev.Account, ev.Repository, ref, ev.Reason, ev.Agent, client)
			continue
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", stamp(ev.Time), ev.Account, ev.Outcome, ev.Repository, ref, shortDigest(ev.Digest), ev.Agent, client)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	what := "pulls and checks"
	if denied {
		what = "refused attempts"
	}
	fmt.Fprintf(e.stdout, "\n%d %s\n", len(events), what)
	return nil
}

// shortDigest keeps a digest's algorithm and first 12 hex digits, as
// docker shows image IDs.
func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// parseUsageTime reads a bound of the report: a day (UTC midnight; an
// until day is included, so its bound is the next midnight), an RFC 3339
// time, or a while before now (a Go duration, or days as 30d).
func parseUsageTime(s string, now time.Time, until bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if until {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a day (2026-11-01), an RFC 3339 time or a while ago (24h, 30d)", s)
}

// usageText is a time of the usage store in `accounts show`.
func usageText(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return stamp(t)
}
