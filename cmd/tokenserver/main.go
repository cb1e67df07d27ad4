// Command tokenserver is the registry token service. `tokenserver [serve]
// -config FILE` runs the server; `tokenserver keygen|inspect|token …` are the
// operator commands of internal/tokencli; `tokenserver check-config FILE`
// validates a configuration (internal/checkconfig); `tokenserver version`
// (or -version) prints the build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/checkconfig"
	"github.com/acme/registry-gateway/internal/configfile"
	"github.com/acme/registry-gateway/internal/tokencli"
	"github.com/acme/registry-gateway/internal/tokenserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The process's own logger becomes the default, so that what the
	// standard library logs with package log (net/http's "Unsolicited
	// response" of a misbehaving upstream, for one) is a JSON line too.
	// Only here: the tests call run, and keep the default as it is.
	useLogger = slog.SetDefault
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// useLogger is handed the service's logger once it is built.
var useLogger = func(*slog.Logger) {}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "keygen", "inspect", "token", "healthcheck", "pull-secret", "accounts", "usage":
			return tokencli.Run(ctx, args, os.Stdin, stdout, stderr, tokenserver.AccountsConfig)
		case "check-config":
			return checkconfig.Run("tokenserver", args[1:], stdout, stderr, tokenserver.CheckConfig)
		case "version":
			buildinfo.Print(stdout, "tokenserver")
			return 0
		case "serve":
			args = args[1:]
		}
	}
	fs := flag.NewFlagSet("tokenserver serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tokenserver [serve] -config FILE [-expand-env]\n       tokenserver keygen|inspect|token|healthcheck|pull-secret|accounts|usage [flags]   (each answers -h)\n       tokenserver check-config [-skip-files] [-expand-env] FILE\n       tokenserver version")
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML configuration `file`")
	expandEnv := fs.Bool("expand-env", false, "replace ${NAME} and ${NAME:-default} in the configuration file with the environment's values first (compose.yaml)")
	version := fs.Bool("version", false, "print the version and exit")
	if len(args) > 0 && args[0] == "help" {
		// Asked for, so on stdout, as `tokenserver accounts help` does.
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		buildinfo.Print(stdout, "tokenserver")
		return 0
	}
	if *configPath == "" || fs.NArg() > 0 {
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "tokenserver: unknown command %q\n\n", fs.Arg(0))
		} else {
			fmt.Fprintf(stderr, "tokenserver: missing -config FILE\n\n")
		}
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath, *expandEnv)
	if err != nil {
		fmt.Fprintf(stderr, "tokenserver: %v\n", err)
		return 1
	}
	if percent, ok := gcPercent(os.LookupEnv); ok {
		debug.SetGCPercent(percent)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	useLogger(log)
	srv, err := tokenserver.New(ctx, cfg, tokenserver.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "tokenserver: %v\n", err)
		return 1
	}
	defer srv.Close()
	if err := srv.Run(ctx); err != nil {
		log.Error("token service stopped", slog.Any("error", err))
		return 1
	}
	log.Info("token service stopped")
	return 0
}

// defaultGCPercent is the token service's GOGC unless the environment sets
// one. It keeps a few MiB live and allocates about 15 KB a token, so at Go's
// default of 100 the collector runs dozens of times a second under load:
// about a sixth of the CPU a token at concurrency 64, and a longer tail
// (bench/notes/2026-12-01-perf-token-token-service-cpu.md). 400 costs about 12 MiB more peak RSS.
const defaultGCPercent = 400

// gcPercent is the GC percent to set: defaultGCPercent, unless GOGC is in
// the environment (then the runtime has applied it already).
func gcPercent(lookupEnv func(string) (string, bool)) (int, bool) {
	if _, set := lookupEnv("GOGC"); set {
		return 0, false
	}
	return defaultGCPercent, true
}

// loadConfig is tokenserver.LoadConfig, with -expand-env's references
// replaced first.
func loadConfig(path string, expandEnv bool) (*tokenserver.Config, error) {
	if !expandEnv {
		return tokenserver.LoadConfig(path)
	}
	data, err := configfile.ReadFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := tokenserver.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}
