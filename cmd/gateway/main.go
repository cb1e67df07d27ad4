// Command gateway is the read-only registry gateway: `gateway -config FILE`
// serves the registry API in front of the configured upstream until SIGINT
// or SIGTERM, then shuts down gracefully. `-check` validates the
// configuration and exits; `gateway check-config FILE` also loads the files
// it names and lists every problem (internal/checkconfig). `gateway report
// [FILE...]` prints who pulled what from the gateway's access lines, JSON or text
// (internal/pullreport). `gateway version` (or -version) prints the build.
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
	"syscall"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/checkconfig"
	"github.com/acme/registry-gateway/internal/configfile"
	"github.com/acme/registry-gateway/internal/gateway"
	"github.com/acme/registry-gateway/internal/pullreport"
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

// usage lists every form of the command line; -h prints it too.
const usage = `usage: gateway -config FILE [-check] [-expand-env]
       gateway check-config [-skip-files] [-expand-env] FILE
       gateway report [--refused] [--format table|csv|json] [FILE...]
       gateway version`

// useLogger is handed the service's logger once it is built.
var useLogger = func(*slog.Logger) {}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check-config":
			return checkconfig.Run("gateway", args[1:], stdout, stderr, gateway.CheckConfig)
		case "report":
			return pullreport.Run(args[1:], os.Stdin, stdout, stderr)
		case "version":
			buildinfo.Print(stdout, "gateway")
			return 0
		}
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	configPath := fs.String("config", "", "YAML configuration `file`")
	check := fs.Bool("check", false, "validate the configuration and exit")
	expandEnv := fs.Bool("expand-env", false, "replace ${NAME} and ${NAME:-default} in the configuration file with the environment's values first (compose.yaml)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		buildinfo.Print(stdout, "gateway")
		return 0
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configPath, *expandEnv)
	if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	useLogger(log)
	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log})
	if err != nil {
		log.Error("gateway failed to start", slog.Any("error", err))
		return 1
	}
	defer gw.Close()
	if err := gw.Run(ctx); err != nil {
		log.Error("gateway stopped", slog.Any("error", err))
		return 1
	}
	log.Info("gateway stopped")
	return 0
}

// loadConfig is gateway.LoadConfig, with -expand-env's references
// replaced first.
func loadConfig(path string, expandEnv bool) (*gateway.Config, error) {
	if !expandEnv {
		return gateway.LoadConfig(path)
	}
	data, err := configfile.ReadFile(path, true)
	if err != nil {
		return nil, err
	}
	cfg, err := gateway.ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}
