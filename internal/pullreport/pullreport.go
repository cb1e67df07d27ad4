// Package pullreport answers "who pulled what, when" from the gateway's
// access records (`kubectl logs`, an exported log file, `make run`'s
// output), JSON or text: per customer × repository × tag or digest, the
// pulls and checks, the first and last time and the bytes served; and,
// separately, the manifest requests refused because the customer's token
// does not grant the repository. It is `gateway report`; it reads logs
// only, so neither it nor the gateway needs the account store.
package pullreport

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// maxLine bounds one log line; access records are a few hundred bytes.
const maxLine = 1 << 20

// accessMsg is the message of the gateway's access lines.
const accessMsg = "request"

// Kinds of an access record, as the gateway's kind field names them.
const (
	KindPull   = "pull"
	KindCheck  = "check"
	KindDenied = "denied"
)

// record is the part of a gateway access record the report reads.
type record struct {
	Time       time.Time `json:"time"`
	Msg        string    `json:"msg"`
	Method     string    `json:"method"`
	Route      string    `json:"route"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	Subject    string    `json:"subject"`
	Repository string    `json:"repository"`
	Reference  string    `json:"reference"`
	Digest     string    `json:"digest"`
	Kind       string    `json:"kind"`
	Reason     string    `json:"reason"`
}

// kind is the record's kind: the gateway's own word when the line has
// one, else (lines of gateways that wrote none) the gateway's rule: a
// manifest GET answered 200 is a pull, a HEAD a check.
func (r *record) kind() string {
	if r.Kind != "" {
		return r.Kind
	}
	if r.Route == "manifest" && r.Status == 200 {
		switch r.Method {
		case "GET":
			return KindPull
		case "HEAD":
			return KindCheck
		}
	}
	return ""
}

// Row is one customer × repository × reference.
type Row struct {
	Customer   string `json:"customer"`
	Repository string `json:"repository"`
	Reference  string `json:"reference"`
	// Digest is the manifest digest last served for Reference (a tag
	// may move between pulls).
	Digest string `json:"digest,omitempty"`
	// Pulls are manifest GETs answered 200; Checks manifest HEADs
	// answered 200: a client that holds the manifest (docker pulling an
	// image it has) asks only whether it is current.
	Pulls  int `json:"pulls"`
	Checks int `json:"checks"`
	// First and Last are the first and last pull or check.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Bytes are the manifest bytes of the pulls and the blob bytes the
	// customer was served in the repository after them.
	Bytes int64 `json:"bytes"`
}

// Refusal is one customer × repository × reference × reason of manifest
// requests refused because the customer's token does not grant the
// repository: a customer asking for a channel it does not hold.
type Refusal struct {
	Customer   string `json:"customer"`
	Repository string `json:"repository"`
	Reference  string `json:"reference"`
	// Reason is the gateway's: channel_not_licensed or
	// repository_not_in_token.
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// Filter keeps rows whose fields equal the non-empty ones.
type Filter struct {
	Customer, Repository, Reference string
}

func (f Filter) keeps(customer, repository, reference, digest string) bool {
	return (f.Customer == "" || strings.EqualFold(f.Customer, customer)) &&
		(f.Repository == "" || f.Repository == repository) &&
		(f.Reference == "" || f.Reference == reference || f.Reference == digest)
}

// BlobsReference is the Reference of blob bytes served in a repository
// before any manifest pull of the customer in the logs read.
const BlobsReference = "(blobs)"

// Stats are counts of the lines read, for the hints.
type Stats struct {
	// Lines are all lines read; LogLines those that are log lines, JSON
	// or text as slog writes them; AccessLines those of them with
	// msg=request; Records the access lines of a customer's read (a valid
	// token's subject and a repository), the ones the report counts.
	Lines, LogLines, AccessLines, Records int
	// Skipped are the lines that are not such records.
	Skipped int
}

// Read collects the access records of r, in either format slog writes:
// JSON objects or key=value text (what `make run` logs), one a line; a
// prefix before the record (`kubectl logs --prefix`, compose's service
// name) is passed over. Lines that are not access records of a customer's
// read are skipped, so that logs mixed with other output work.
func Read(r io.Reader, out *[]record, st *Stats) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		st.Lines++
		var rec record
		if !parseLine(sc.Bytes(), &rec) {
			st.Skipped++
			continue
		}
		st.LogLines++
		if rec.Msg != accessMsg {
			st.Skipped++
			continue
		}
		st.AccessLines++
		if rec.Subject == "" || rec.Repository == "" {
			st.Skipped++
			continue
		}
		st.Records++
		*out = append(*out, rec)
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("line %d is longer than %d bytes", st.Lines+1, maxLine)
	}
	return sc.Err()
}

// parseLine reads one log line, JSON or text, into rec; false when it is
// neither.
func parseLine(line []byte, rec *record) bool {
	if i := bytes.IndexByte(line, '{'); i >= 0 && bytes.IndexByte(line[:i], '=') < 0 {
		return json.Unmarshal(line[i:], rec) == nil && rec.Msg != ""
	}
	return parseText(string(line), rec)
}

// Aggregate turns records (in any order) into rows of pulls and checks,
// sorted by customer, repository and first pull or check. Blob bytes count
// towards the customer's last manifest pull in the same repository before
// them: a client fetches a manifest, then its layers.
func Aggregate(recs []record, f Filter) []Row {
	slices.SortStableFunc(recs, func(a, b record) int { return a.Time.Compare(b.Time) })
	type key struct{ customer, repository, reference string }
	rows := map[key]*Row{}
	last := map[[2]string]key{} // customer, repository → last pull
	row := func(k key, at time.Time) *Row {
		r := rows[k]
		if r == nil {
			r = &Row{Customer: k.customer, Repository: k.repository, Reference: k.reference, First: at}
			rows[k] = r
		}
		r.Last = at
		return r
	}
	for _, rec := range recs {
		cr := [2]string{rec.Subject, rec.Repository}
		switch kind := rec.kind(); {
		case kind == KindPull || kind == KindCheck:
			k := key{rec.Subject, rec.Repository, rec.Reference}
			r := row(k, rec.Time)
			if rec.Digest != "" {
				r.Digest = rec.Digest
			}
			if kind == KindCheck {
				r.Checks++
				continue
			}
			r.Pulls++
			r.Bytes += rec.Bytes
			last[cr] = k
		case rec.Route == "blob" && rec.Method == "GET" && rec.Status < 400:
			k, ok := last[cr]
			if !ok {
				k = key{rec.Subject, rec.Repository, BlobsReference}
				row(k, rec.Time)
			}
			rows[k].Bytes += rec.Bytes
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		if f.keeps(r.Customer, r.Repository, r.Reference, r.Digest) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Customer, b.Customer), cmp.Compare(a.Repository, b.Repository),
			a.First.Compare(b.First), cmp.Compare(a.Reference, b.Reference))
	})
	return out
}

// Refusals turns the denied records (in any order) into rows, sorted by
// customer, repository and first attempt.
func Refusals(recs []record, f Filter) []Refusal {
	type key struct{ customer, repository, reference, reason string }
	rows := map[key]*Refusal{}
	for _, rec := range recs {
		if rec.kind() != KindDenied || !f.keeps(rec.Subject, rec.Repository, rec.Reference, "") {
			continue
		}
		k := key{rec.Subject, rec.Repository, rec.Reference, rec.Reason}
		r := rows[k]
		if r == nil {
			r = &Refusal{Customer: k.customer, Repository: k.repository, Reference: k.reference, Reason: k.reason, First: rec.Time, Last: rec.Time}
			rows[k] = r
		}
		r.Attempts++
		if rec.Time.Before(r.First) {
			r.First = rec.Time
		}
		if rec.Time.After(r.Last) {
			r.Last = rec.Time
		}
	}
	out := make([]Refusal, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Refusal) int {
		return cmp.Or(cmp.Compare(a.Customer, b.Customer), cmp.Compare(a.Repository, b.Repository),
			a.First.Compare(b.First), cmp.Compare(a.Reference, b.Reference), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// Formats of Write.
const (
	FormatTable = "table"
	FormatCSV   = "csv"
	FormatJSON  = "json"
)

const timeLayout = "2006-01-02 15:04:05Z"

// Write prints rows as a table, CSV or JSON. CSV puts checks last, so that
// scripts that index the other columns by position keep working.
func Write(w io.Writer, rows []Row, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, rows)
	case FormatCSV:
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"customer", "repository", "reference", "digest", "pulls", "first", "last", "bytes", "checks"})
		for _, r := range rows {
			_ = cw.Write([]string{r.Customer, r.Repository, r.Reference, r.Digest, strconv.Itoa(r.Pulls),
				r.First.UTC().Format(time.RFC3339), r.Last.UTC().Format(time.RFC3339), strconv.FormatInt(r.Bytes, 10), strconv.Itoa(r.Checks)})
		}
		cw.Flush()
		return cw.Error()
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tREPOSITORY\tREFERENCE\tPULLS\tCHECKS\tFIRST\tLAST\tBYTES\tDIGEST")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%d\t%s\n", r.Customer, r.Repository, shortRef(r.Reference), r.Pulls, r.Checks,
				r.First.UTC().Format(timeLayout), r.Last.UTC().Format(timeLayout), r.Bytes, shortRef(r.Digest))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown format %q (table, csv or json)", format)
}

// WriteRefusals prints refusals as a table, CSV or JSON.
func WriteRefusals(w io.Writer, rows []Refusal, format string) error {
	switch format {
	case FormatJSON:
		return writeJSON(w, rows)
	case FormatCSV:
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"customer", "repository", "reference", "reason", "attempts", "first", "last"})
		for _, r := range rows {
			_ = cw.Write([]string{r.Customer, r.Repository, r.Reference, r.Reason, strconv.Itoa(r.Attempts),
				r.First.UTC().Format(time.RFC3339), r.Last.UTC().Format(time.RFC3339)})
		}
		cw.Flush()
		return cw.Error()
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tREPOSITORY\tREFERENCE\tREASON\tATTEMPTS\tFIRST\tLAST")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Customer, r.Repository, shortRef(r.Reference), r.Reason, r.Attempts,
				r.First.UTC().Format(timeLayout), r.Last.UTC().Format(timeLayout))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown format %q (table, csv or json)", format)
}

func writeJSON[T any](w io.Writer, rows []T) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

// shortRef keeps a table readable: digests shortened to 12 hex digits, as
// docker shows image IDs.
func shortRef(s string) string {
	if alg, hex, ok := strings.Cut(s, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return s
}
