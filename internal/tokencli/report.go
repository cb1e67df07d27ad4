// What inspect knows about a token (report, also its --json output) and its
// rendering for a terminal.

package tokencli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acme/registry-gateway/pkg/auth"
)

// report is everything inspect knows about a token; it is also the --json
// output.
type report struct {
	Header           map[string]any         `json:"header"`
	Claims           map[string]any         `json:"claims"`
	IssuedAt         *time.Time             `json:"issued_at,omitempty"`
	NotBefore        *time.Time             `json:"not_before,omitempty"`
	ExpiresAt        *time.Time             `json:"expires_at,omitempty"`
	Expired          bool                   `json:"expired"`
	NotYetValid      bool                   `json:"not_yet_valid,omitempty"`
	ExpiresInSeconds *int64                 `json:"expires_in_seconds,omitempty"`
	Access           []auth.ResourceActions `json:"access"`
	Channels         []string               `json:"channels,omitempty"`
	Problems         []string               `json:"problems,omitempty"`
	Verification     verification           `json:"verification"`

	d *decoded
}

func (e *env) buildReport(ctx context.Context, d *decoded, ko keyOptions) *report {
	now := e.now()
	r := &report{
		Header: d.header, Claims: d.claimsRaw,
		Access: d.claims.Access, Channels: d.claims.Channels,
		Problems: d.problems(), d: d,
	}
	if r.Access == nil {
		r.Access = []auth.ResourceActions{}
	}
	if c := d.claims.IssuedAt; c != nil {
		t := c.UTC()
		r.IssuedAt = &t
	}
	if c := d.claims.NotBefore; c != nil {
		t := c.UTC()
		r.NotBefore = &t
		r.NotYetValid = now.Before(t)
	}
	if c := d.claims.ExpiresAt; c != nil {
		t := c.UTC()
		r.ExpiresAt = &t
		secs := int64(t.Sub(now).Round(time.Second) / time.Second)
		r.ExpiresInSeconds = &secs
		r.Expired = !now.Before(t)
	} else {
		r.Expired = true
	}
	r.Verification = e.verify(ctx, d, ko)
	return r
}

// failed reports whether the token would be refused.
func (r *report) failed() bool {
	return r.Expired || r.NotYetValid || len(r.Problems) > 0 || (r.Verification.Checked && !r.Verification.OK)
}

// writeText renders the report as aligned sections.
func (e *env) writeText(w io.Writer, r *report) {
	st := e.style()
	now := e.now()
	d := r.d
	section := func(title string) *tabwriter.Writer {
		fmt.Fprintln(w, st.bold(title))
		return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}

	tw := section("Header")
	for _, k := range sortedKeys(d.header) {
		v := d.header[k]
		if k == "x5c" {
			fmt.Fprintf(tw, "  x5c\t%s\n", describeChain(d, now))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, compact(v))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = section("Claims")
	times := map[string]*time.Time{"iat": r.IssuedAt, "nbf": r.NotBefore, "exp": r.ExpiresAt}
	for _, k := range sortedKeys(d.claimsRaw) {
		if k == "access" {
			continue // the table below
		}
		if t, ok := times[k]; ok && t != nil {
			fmt.Fprintf(tw, "  %s\t%s (%s)\n", k, stamp(*t), relative(*t, now))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, compact(d.claimsRaw[k]))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = section("Validity")
	switch {
	case r.ExpiresAt == nil:
		fmt.Fprintf(tw, "  status\t%s\n", st.red("INVALID: no exp claim"))
	case r.Expired:
		fmt.Fprintf(tw, "  status\t%s\n", st.red("EXPIRED "+relative(*r.ExpiresAt, now)))
	case r.NotYetValid:
		fmt.Fprintf(tw, "  status\t%s\n", st.yellow("NOT YET VALID, starts "+relative(*r.NotBefore, now)))
	default:
		fmt.Fprintf(tw, "  status\t%s\n", st.green("valid, expires "+relative(*r.ExpiresAt, now)))
	}
	if r.IssuedAt != nil && r.ExpiresAt != nil {
		fmt.Fprintf(tw, "  lifetime\t%s\n", human(r.ExpiresAt.Sub(*r.IssuedAt)))
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(w, st.bold("Access"))
	if len(r.Access) == 0 {
		fmt.Fprintln(w, "  (none: the token grants nothing but `docker login`)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tNAME\tACTIONS\tCHANNEL")
		for _, ra := range r.Access {
			typ := ra.Type
			if ra.Class != "" {
				typ += "(" + ra.Class + ")"
			}
			channel := "-"
			if ra.Type == auth.TypeRepository {
				channel = auth.Channel(ra.Name)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", typ, ra.Name, strings.Join(ra.Actions, ","), channel)
		}
		tw.Flush()
	}

	if len(r.Problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Problems"))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s %s\n", st.red("!"), p)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, st.bold("Signature"))
	switch v := r.Verification; {
	case !v.Checked:
		fmt.Fprintf(w, "  %s\n", st.yellow(v.Message))
	case v.OK:
		fmt.Fprintf(w, "  %s %s\n", st.green("OK"), v.Message)
	default:
		fmt.Fprintf(w, "  %s %s\n", st.red("FAILED ("+v.Reason+")"), v.Message)
	}
}

// describeChain summarises the x5c header: whose certificate, valid until.
func describeChain(d *decoded, now time.Time) string {
	if d.x5cErr != nil {
		return "unreadable: " + d.x5cErr.Error()
	}
	if len(d.x5c) == 0 {
		return "(empty)"
	}
	leaf := d.x5c[0]
	s := fmt.Sprintf("%d certificate(s), leaf CN=%q, valid until %s", len(d.x5c), leaf.Subject.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"))
	if now.After(leaf.NotAfter) {
		s += " (EXPIRED: registries refuse the chain)"
	}
	return s
}

// compact renders a JSON value on one line.
func compact(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
