// What the `token` command found (tokenResult, also its --json output) and
// its rendering for a terminal.

package tokencli

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/acme/registry-gateway/pkg/auth"
)

// tokenResult is the --json output of the token command.
type tokenResult struct {
	Registry   string         `json:"registry,omitempty"`
	Challenge  map[string]any `json:"challenge,omitempty"`
	Realm      string         `json:"realm"`
	Service    string         `json:"service,omitempty"`
	Status     int            `json:"status"`
	Error      string         `json:"error,omitempty"`
	Hint       string         `json:"hint,omitempty"`
	ExpiresIn  *int64         `json:"expires_in,omitempty"`
	IssuedAt   string         `json:"issued_at,omitempty"`
	Warnings   []string       `json:"warnings,omitempty"`
	Scopes     []scopeResult  `json:"scopes,omitempty"`
	Checks     []checkResult  `json:"checks,omitempty"`
	Token      *report        `json:"token,omitempty"`
	Successful bool           `json:"ok"`
}

type scopeResult struct {
	Scope     string   `json:"scope"`
	Requested []string `json:"requested"`
	Granted   []string `json:"granted"`
}

func (s scopeResult) complete() bool {
	for _, a := range s.Requested {
		if !slices.Contains(s.Granted, a) && !slices.Contains(s.Granted, auth.ActionAll) {
			return false
		}
	}
	return true
}

type checkResult struct {
	Request string `json:"request"`
	Status  int    `json:"status"`
	Note    string `json:"note,omitempty"`
}

func (e *env) writeTokenText(res *tokenResult) {
	st := e.style()
	w := e.stdout
	fmt.Fprintln(w, st.bold("Request"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if res.Registry != "" {
		fmt.Fprintf(tw, "  registry\t%s\n", res.Registry)
	}
	if res.Challenge != nil {
		fmt.Fprintf(tw, "  challenge\t%s\n", compact(res.Challenge["params"]))
	}
	if res.Realm != "" {
		fmt.Fprintf(tw, "  realm\t%s\n", res.Realm)
	}
	if res.Service != "" {
		fmt.Fprintf(tw, "  service\t%s\n", res.Service)
	}
	if res.Status != 0 {
		status := fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status))
		if res.Status == http.StatusOK {
			status = st.green(status)
		} else {
			status = st.red(status)
		}
		fmt.Fprintf(tw, "  answer\t%s\n", status)
	}
	if res.ExpiresIn != nil {
		fmt.Fprintf(tw, "  expires_in\t%ds\n", *res.ExpiresIn)
	}
	if res.IssuedAt != "" {
		fmt.Fprintf(tw, "  issued_at\t%s\n", res.IssuedAt)
	}
	tw.Flush()
	if res.Error != "" {
		fmt.Fprintf(w, "  %s %s\n", st.red("FAILED"), res.Error)
		if res.Hint != "" {
			fmt.Fprintf(w, "  hint: %s\n", res.Hint)
		}
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(w, "  %s %s\n", st.yellow("warning:"), warn)
	}
	if res.Token == nil {
		return
	}

	if len(res.Scopes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Scopes"))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SCOPE\tREQUESTED\tGRANTED\tRESULT")
		for _, s := range res.Scopes {
			verdict := st.green("granted")
			if !s.complete() {
				verdict = st.red("NOT GRANTED")
				if len(s.Granted) > 0 {
					verdict = st.yellow("partly granted")
				}
			}
			granted := strings.Join(s.Granted, ",")
			if granted == "" {
				granted = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Scope, strings.Join(s.Requested, ","), granted, verdict)
		}
		tw.Flush()
		for _, s := range res.Scopes {
			if !s.complete() {
				fmt.Fprintf(w, "  hint: the token service leaves out what the account may not have (for a repository: the account does not hold channel %q); the registry then answers 401\n",
					auth.Channel(strings.SplitN(s.Scope, ":", 3)[1]))
				break
			}
		}
	}

	if len(res.Checks) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Registry with this token"))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range res.Checks {
			status := "error"
			if c.Status != 0 {
				status = fmt.Sprintf("%d", c.Status)
			}
			if c.Status/100 == 2 {
				status = st.green(status)
			} else {
				status = st.red(status)
			}
			if c.Note == "" {
				fmt.Fprintf(tw, "  %s\t%s\n", c.Request, status)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Request, status, c.Note)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	e.writeText(w, res.Token)
}
