// Package checkconfig is the `check-config` command both services carry:
// validate a configuration file the way the service would at start, list
// every problem, and exit non-zero when there is one. The Helm chart's tests
// run it on every rendered configuration, and operators run it before a
// rollout.
//
// Files the configuration names (keys, password and licence files) are
// loaded too, unless -skip-files is given: in Kubernetes they come from
// Secrets mounted only inside the pod, so a check outside the pod can judge
// only the syntax and the values.
//
// -expand-env replaces ${NAME} and ${NAME:-default} from the environment
// first, as the services' own -expand-env does (internal/configfile), so a
// compose configuration is checked with the values it will run with rather
// than reported as holding "${GATEWAY_URL}/token" for a URL.
package checkconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/acme/registry-gateway/internal/configfile"
)

// Checker validates data, the configuration read from the file at path
// (with its environment references already replaced under -expand-env;
// path only names the file in messages); with files, it also loads every
// file the configuration refers to. It returns every problem (errors.Join)
// or nil.
type Checker func(path string, data []byte, files bool) error

// Exit codes, as the services' own: 0 ok, 1 problems found, 2 usage.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Run runs `<service> check-config [-skip-files] [-expand-env] FILE` with
// args after the command name.
func Run(service string, args []string, stdout, stderr io.Writer, check Checker) int {
	fs := flag.NewFlagSet(service+" check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	skipFiles := fs.Bool("skip-files", false, "check syntax and values only; do not load the key, password or licence files the configuration names")
	expandEnv := fs.Bool("expand-env", false, "replace ${NAME} and ${NAME:-default} with the environment's values first, as the service's -expand-env does (compose.yaml)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s check-config [-skip-files] [-expand-env] FILE\n", service)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case fs.NArg() == 0:
		fmt.Fprintf(stderr, "%s check-config: missing FILE (the configuration file to check)\n", service)
		fs.Usage()
		return exitUsage
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "%s check-config: unexpected argument %q (one FILE at a time)\n", service, fs.Arg(1))
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	// A file that cannot be read or whose references cannot be replaced is
	// reported like any other problem (each unset name listed).
	data, err := configfile.ReadFile(path, *expandEnv)
	if err == nil {
		err = check(path, data, !*skipFiles)
	}
	if err != nil {
		problems := split(err)
		fmt.Fprintf(stderr, "%s: %s: %d problem(s):\n", service, path, len(problems))
		for _, p := range problems {
			fmt.Fprintf(stderr, "  - %s\n", p)
		}
		return exitFail
	}
	fmt.Fprintln(stdout, "ok")
	return exitOK
}

// split lists the problems of a joined error, one a line.
func split(err error) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
