// Package tokencli holds the operator commands of the tokenserver binary:
// keygen (signing key, certificate, JWKS), inspect (decode and verify a
// token), token (run a client's login flow and inspect what comes back),
// healthcheck (for container images that have no curl), pull-secret (a
// Kubernetes pull secret for a customer), accounts (the customer
// accounts of the licenses.sql backend) and usage (who pulled what, when,
// from the usage store beside the accounts).
//
// The commands are for people reading a terminal: aligned columns, colour
// only on a terminal, and failures explained in words rather than error
// codes. `--json` gives scripts the same facts.
//
// One job per file: tokencli.go dispatches and holds what every command
// shares (flags, the HTTP client, exit codes); token.go, tokenflow.go (the
// client's login flow), password.go and tokenreport.go (result and
// rendering) make the `token` command; inspect.go, jwt.go (decoding),
// verify.go (keys and verification) and report.go (result and rendering)
// make `inspect`, which `token` reuses for the token it gets; keygen.go,
// healthcheck.go, pullsecret.go, accounts.go and usage.go are one command each
// (export.go the accounts export and the import of one; accountstore.go
// the store the accounts commands are written against, the database or,
// with --server, the admin API of remotestore.go, whose flags
// accountsremote.go checks);
// style.go is the terminal's colours and times. The WWW-Authenticate challenge is
// pkg/auth's Challenge, the same type the gateway writes.
package tokencli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/acme/registry-gateway/internal/accounts"
	"github.com/acme/registry-gateway/internal/tlsx"
)

// Exit codes: 0 all good; 1 the check failed (expired or refused token,
// unhealthy server); 2 the command could not run (usage, unreadable input).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// env is what a command touches outside itself, so that tests can fix the
// clock, the HTTP client and the terminal.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
	client         *http.Client
	getenv         func(string) string
	color          bool
	accountsConfig AccountsConfig
}

// AccountsConfig loads the token service's configuration file at path,
// checked as the service checks it, and returns its licenses.sql section:
// the account database of `accounts`; nil when the file configures another
// licence backend. The token service's package has it
// (tokenserver.AccountsConfig); it is passed in so that these commands do
// not depend on the service.
type AccountsConfig func(path string) (*accounts.Config, error)

// Run runs the subcommand args[0] with the rest of args and returns the exit
// code. accountsConfig is what `accounts` reads its -config with.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, accountsConfig AccountsConfig) int {
	e := &env{
		stdin:          stdin,
		stdout:         stdout,
		stderr:         stderr,
		now:            time.Now,
		client:         &http.Client{Timeout: 30 * time.Second},
		getenv:         os.Getenv,
		color:          colorTerminal(stdout),
		accountsConfig: accountsConfig,
	}
	return e.run(ctx, args)
}

// trustCA makes e's client verify https servers against the CAs in file
// (--cacert) instead of the system's, e.g. the development CA of `make run
// TLS=1`.
func (e *env) trustCA(file string) error {
	if file == "" {
		return nil
	}
	pool, err := tlsx.LoadCertPool(file)
	if err != nil {
		return fmt.Errorf("--cacert: %w", err)
	}
	c := *e.client
	c.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsx.ClientTLSConfig(pool, nil)}
	e.client = &c
	return nil
}

// colorTerminal reports whether w is a terminal that wants colour: see
// https://no-color.org for NO_COLOR.
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	return os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

const usage = `Operator commands of the tokenserver binary:

  tokenserver keygen [-dir certs] [-next] [-rsa] [-force]
      write a signing key, its certificate, public key and JWKS
      (-next: the next key of a rotation, beside the current one)
  tokenserver inspect [TOKEN | -] [--jwks URL|FILE | --key FILE] [--cacert FILE] [--json]
      decode a token, show its grants and validity, verify its signature
  tokenserver token -u USER [-p PASSWORD | -p -] [--scope SCOPE]... (--registry URL | --realm URL) [--cacert FILE]
      log in like a client and inspect the token that comes back
  tokenserver healthcheck URL
      exit 0 when URL answers 2xx (for container health checks)
  tokenserver pull-secret -registry HOST -username USER [-name regcred] [-namespace NS] < api-token
      print a Kubernetes pull secret (kubernetes.io/dockerconfigjson) that
      kubelet can use: username and API token, no identity token
  tokenserver accounts add|list|show|grant|token|… -config FILE
      customer accounts of the licenses.sql backend (accounts help); also
      remotely, --server URL --admin-key-file FILE instead of -config
  tokenserver usage -config FILE [--account EMAIL] [--channel C] [--repository R] [--digest D]
                    [--since T] [--until T] [--denied] [--format table|json|csv]
      who pulled what, when, from the usage store (--denied: refused attempts)

Run a command with -h for its flags.
`

func (e *env) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintf(e.stderr, "tokenserver: missing command\n\n%s", usage)
		return exitUsage
	}
	switch args[0] {
	case "keygen":
		return e.keygen(args[1:])
	case "inspect":
		return e.inspect(ctx, args[1:])
	case "token":
		return e.token(ctx, args[1:])
	case "healthcheck":
		return e.healthcheck(ctx, args[1:])
	case "pull-secret":
		return e.pullSecret(args[1:])
	case "accounts":
		return e.accounts(ctx, args[1:])
	case "usage":
		return e.usageReport(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		// `help accounts` is `accounts -h`.
		if len(args) > 1 && args[1] == "accounts" {
			return e.accounts(ctx, append([]string{"help"}, args[2:]...))
		}
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "tokenserver: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

// newFlagSet returns a flag set that reports to stderr and does not exit.
func (e *env) newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenserver "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: tokenserver %s %s\n\nflags (-x and --x are the same):\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags that may come before, between or after the
// positional arguments (`inspect TOKEN --jwks URL` reads naturally, and the
// standard flag package stops at the first positional argument).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError reports a flag problem; flag.ErrHelp (-h) is not a failure.
func (e *env) usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
