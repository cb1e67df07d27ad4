package admin

import (
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/registry-gateway/internal/accounts"
)

const (
	// maxUsagePage bounds a page of usage events as JSON: events are
	// small, and an export of many goes as CSV.
	maxUsagePage = 1000
	// maxCSVRows bounds a CSV export: a month of a busy vendor's pulls,
	// a few hundred megabytes at most.
	maxCSVRows = 1_000_000
	// csvPageWait bounds the writing of one page of a CSV export; the
	// listener's write timeout would cut a long export, so each page
	// gets its own.
	csvPageWait = 30 * time.Second
	// maxFilterBytes bounds a filter value: longer than any account,
	// repository or digest the store accepts.
	maxFilterBytes = 320
)

// usageFilter parses the query of GET /usage into the store's query; the
// problem names the parameter at fault.
func usageFilter(r *http.Request) (accounts.UsageQuery, error) {
	v := r.URL.Query()
	var errs []fieldError
	q := accounts.UsageQuery{
		Account:    v.Get("account"),
		Channel:    v.Get("channel"),
		Repository: v.Get("repository"),
		Digest:     v.Get("digest"),
	}
	for _, name := range []string{"account", "channel", "repository", "digest"} {
		if len(v.Get(name)) > maxFilterBytes {
			errs = append(errs, fieldError{Field: name, Detail: fmt.Sprintf("longer than %d bytes", maxFilterBytes)})
		}
	}
	parseTime := func(name string) time.Time {
		s := v.Get(name)
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fieldError{Field: name, Detail: "want an RFC 3339 time such as 2026-12-01T00:00:00Z"})
		}
		return t
	}
	q.Since, q.Until = parseTime("since"), parseTime("until")
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		errs = append(errs, fieldError{Field: "until", Detail: "not after since"})
	}
	for _, list := range v["outcome"] {
		for o := range strings.SplitSeq(list, ",") {
			switch o {
			case accounts.UsagePull, accounts.UsageCheck, accounts.UsageDenied:
				if !slices.Contains(q.Outcomes, o) {
					q.Outcomes = append(q.Outcomes, o)
				}
			default:
				errs = append(errs, fieldError{Field: "outcome", Detail: fmt.Sprintf("%q is not one of pull, check, denied", o)})
			}
		}
	}
	if c := v.Get("cursor"); c != "" {
		after, ok := parseUsageCursor(c)
		if !ok {
			errs = append(errs, fieldError{Field: "cursor", Detail: "not a cursor this API gave"})
		}
		q.After = after
	}
	if len(errs) > 0 {
		return q, invalid("bad usage query", errs...)
	}
	return q, nil
}

// A usage cursor is the last event of a page, (time, id): the store's
// listing order.
func usageCursor(e accounts.UsageEvent) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(e.Time.UnixMilli(), 10) + "." + strconv.FormatInt(e.ID, 10)))
}

func parseUsageCursor(c string) (accounts.UsageEvent, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return accounts.UsageEvent{}, false
	}
	msText, idText, ok := strings.Cut(string(b), ".")
	if !ok {
		return accounts.UsageEvent{}, false
	}
	ms, err1 := strconv.ParseInt(msText, 10, 64)
	id, err2 := strconv.ParseInt(idText, 10, 64)
	if err1 != nil || err2 != nil || ms < 0 || id <= 0 {
		return accounts.UsageEvent{}, false
	}
	return accounts.UsageEvent{ID: id, Time: time.UnixMilli(ms).UTC()}, true
}

// wantsCSV decides the answer's format: ?format, else the Accept header.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, invalid("bad format", fieldError{Field: "format", Detail: "want json or csv"})
	}
	for _, h := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(h, ",") {
			// text/csv;q=0 says "not CSV".
			if mt, params, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/csv" && !zeroQ(params["q"]) {
				return true, nil
			}
		}
	}
	return false, nil
}

func zeroQ(q string) bool {
	f, err := strconv.ParseFloat(q, 64)
	return err == nil && f == 0
}

func (a *api) usage(w http.ResponseWriter, r *http.Request, _ accounts.AdminKey) error {
	q, err := usageFilter(r)
	if err != nil {
		return err
	}
	asCSV, err := wantsCSV(r)
	if err != nil {
		return err
	}
	w.Header().Set("Vary", "Accept")
	if asCSV {
		if r.URL.Query().Has("limit") {
			return invalid("a CSV export holds every event selected", fieldError{Field: "limit", Detail: "pages are for JSON; leave limit out with CSV"})
		}
		return a.usageCSV(w, r, q)
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxUsagePage {
			return invalid("bad paging", fieldError{Field: "limit", Detail: "want a whole number from 1 to " + strconv.Itoa(maxUsagePage)})
		}
		limit = n
	}
	q.Limit = limit + 1
	events, err := a.db.Usage(r.Context(), q)
	if err != nil {
		return err
	}
	out := page[accounts.UsageEvent]{Items: events}
	if len(events) > limit {
		out.Items = events[:limit]
		out.NextCursor = usageCursor(events[limit-1])
	}
	return writeJSON(w, http.StatusOK, out)
}

// usageCSV streams every event q selects as CSV, a page of the store at a
// time. An export past its bound (maxCSVRows) is cut off mid-stream (the connection
// is aborted), so that a client never takes a truncated file for a
// complete one.
func (a *api) usageCSV(w http.ResponseWriter, r *http.Request, q accounts.UsageQuery) error {
	const pageRows = maxUsagePage
	q.Limit = pageRows
	events, err := a.db.Usage(r.Context(), q)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+csvFilename(q)+`"`)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	cw, err := accounts.NewUsageCSVWriter(w)
	if err != nil {
		return nil // the client went away
	}
	rows := 0
	for {
		_ = rc.SetWriteDeadline(time.Now().Add(csvPageWait))
		for _, ev := range events {
			if rows == a.csvRows {
				a.log.Warn("admin API: usage CSV export cut at its bound", "rows", rows)
				panic(http.ErrAbortHandler)
			}
			if err := cw.Write(ev); err != nil {
				return nil
			}
			rows++
		}
		if err := cw.Flush(); err != nil {
			return nil
		}
		_ = rc.Flush()
		if len(events) < pageRows {
			return nil
		}
		q.After = events[len(events)-1]
		if events, err = a.db.Usage(r.Context(), q); err != nil {
			// The status is sent: all that is left is to cut the answer
			// short so that it is not taken for the whole export.
			a.log.Error("admin API: usage CSV export", "error", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// csvFilename names an export by its time range.
func csvFilename(q accounts.UsageQuery) string {
	name := "usage"
	if !q.Since.IsZero() {
		name += "-from-" + q.Since.UTC().Format("20060102T150405Z")
	}
	if !q.Until.IsZero() {
		name += "-to-" + q.Until.UTC().Format("20060102T150405Z")
	}
	return name + ".csv"
}
