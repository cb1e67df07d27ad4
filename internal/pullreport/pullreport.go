// Package pullreport answers "who pulled what, when" from the gateway's
// JSON access records (`kubectl logs`, an exported log file): per customer
// × repository × tag or digest, the pulls, the first and last time and the
// bytes served. It is `gateway report`; it reads logs only, so neither it
// nor the gateway needs the account store.
package pullreport

import (
	"bufio"
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
}

// isPull is the gateway's rule (gateway_pulls_total): a manifest GET, by
// tag or digest, answered 200.
func (r *record) isPull() bool {
	return r.Route == "manifest" && r.Method == "GET" && r.Status == 200
}

// Row is one customer × repository × reference.
type Row struct {
	Customer   string `json:"customer"`
	Repository string `json:"repository"`
	Reference  string `json:"reference"`
	// Digest is the manifest digest last served for Reference (a tag
	// may move between pulls).
	Digest string    `json:"digest,omitempty"`
	Pulls  int       `json:"pulls"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	// Bytes are the manifest bytes of the pulls and the blob bytes the
	// customer was served in the repository after them.
	Bytes int64 `json:"bytes"`
}

// Filter keeps rows whose fields equal the non-empty ones.
type Filter struct {
	Customer, Repository, Reference string
}

// BlobsReference is the Reference of blob bytes served in a repository
// before any manifest pull of the customer in the logs read.
const BlobsReference = "(blobs)"

// Stats are counts of the lines read, for the summary.
type Stats struct {
	Lines, Records, Skipped int
}

// Read collects the access records of r. Lines that are not JSON objects
// or not access records of a customer's read are skipped, so that logs
// mixed with other output (kubectl logs of several containers) work.
func Read(r io.Reader, out *[]record, st *Stats) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		st.Lines++
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			st.Skipped++
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil || rec.Msg != "request" || rec.Subject == "" || rec.Repository == "" {
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

// Aggregate turns records (in any order) into rows, sorted by customer,
// repository and first pull. Blob bytes count towards the customer's last
// manifest pull in the same repository before them: a client fetches a
// manifest, then its layers.
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
		switch {
		case rec.isPull():
			k := key{rec.Subject, rec.Repository, rec.Reference}
			r := row(k, rec.Time)
			r.Pulls++
			r.Bytes += rec.Bytes
			if rec.Digest != "" {
				r.Digest = rec.Digest
			}
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
		if (f.Customer == "" || strings.EqualFold(f.Customer, r.Customer)) &&
			(f.Repository == "" || f.Repository == r.Repository) &&
			(f.Reference == "" || f.Reference == r.Reference || f.Reference == r.Digest) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Customer, b.Customer), cmp.Compare(a.Repository, b.Repository),
			a.First.Compare(b.First), cmp.Compare(a.Reference, b.Reference))
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

// Write prints rows as a table, CSV or JSON.
func Write(w io.Writer, rows []Row, format string) error {
	switch format {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case FormatCSV:
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"customer", "repository", "reference", "digest", "pulls", "first", "last", "bytes"})
		for _, r := range rows {
			_ = cw.Write([]string{r.Customer, r.Repository, r.Reference, r.Digest, strconv.Itoa(r.Pulls),
				r.First.UTC().Format(time.RFC3339), r.Last.UTC().Format(time.RFC3339), strconv.FormatInt(r.Bytes, 10)})
		}
		cw.Flush()
		return cw.Error()
	case FormatTable, "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tREPOSITORY\tREFERENCE\tPULLS\tFIRST\tLAST\tBYTES\tDIGEST")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", r.Customer, r.Repository, shortRef(r.Reference), r.Pulls,
				r.First.UTC().Format(timeLayout), r.Last.UTC().Format(timeLayout), r.Bytes, shortRef(r.Digest))
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown format %q (table, csv or json)", format)
}

// shortRef keeps a table readable: digests shortened to 12 hex digits, as
// docker shows image IDs.
func shortRef(s string) string {
	if alg, hex, ok := strings.Cut(s, ":"); ok && len(hex) > 12 {
		return alg + ":" + hex[:12]
	}
	return s
}
