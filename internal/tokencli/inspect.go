// The `inspect` command: its flags and which output to write. Decoding is in
// jwt.go, the check against keys in verify.go, the report in report.go.

package tokencli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// inspect is `tokenserver inspect`: decode a token and, with keys, verify
// it as the gateway would.
func (e *env) inspect(ctx context.Context, args []string) int {
	fs := e.newFlagSet("inspect", "[TOKEN | -] [--jwks URL|FILE] [--key FILE] [--json]")
	var ko keyOptions
	ko.register(fs)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 1 {
		fmt.Fprintln(e.stderr, "tokenserver inspect: give one token (or - to read it from stdin)")
		return exitUsage
	}
	var input string
	if len(pos) == 1 && pos[0] != "-" {
		input = pos[0]
	} else {
		if f, ok := e.stdin.(*os.File); ok && len(pos) == 0 && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintln(e.stderr, "tokenserver inspect: no token: pass it as an argument, or - to read it from stdin")
			return exitUsage
		}
		data, err := io.ReadAll(io.LimitReader(e.stdin, maxInput))
		if err != nil {
			fmt.Fprintf(e.stderr, "tokenserver inspect: reading stdin: %v\n", err)
			return exitUsage
		}
		input = string(data)
	}
	raw, err := cleanToken(input)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
		return exitUsage
	}
	d, err := decodeToken(raw)
	if err == nil {
		err = e.trustCA(ko.cacert)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
		return exitUsage
	}
	r := e.buildReport(ctx, d, ko)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
			return exitUsage
		}
	} else {
		e.writeText(e.stdout, r)
	}
	if r.failed() {
		return exitFail
	}
	return exitOK
}
