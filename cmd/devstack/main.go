// Command devstack runs the local demo stack (`make run`): upstream
// registry, token service and gateway in one process, configured by
// deploy/*.yaml. `devstack seed` only pushes the demo images to a registry
// (the compose stack's seed job); `devstack version` (or -version) prints
// the build.
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
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first Ctrl-C the default handling is back, so that a
		// second one kills a shutdown that hangs.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "seed":
			return seed(ctx, args[1:], stdout, stderr)
		case "version":
			buildinfo.Print(stdout, "devstack")
			return 0
		}
	}
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: devstack [flags]\n       devstack seed [-registry HOST:PORT] [-username USER] [-password-file FILE]\n       devstack version")
		fs.PrintDefaults()
	}
	var opts devstack.Options
	fs.StringVar(&opts.Dir, "dir", ".", "repository root: relative paths in the configuration files start here")
	fs.StringVar(&opts.TokenServerConfig, "tokenserver-config", "deploy/tokenserver.yaml", "token service configuration")
	fs.StringVar(&opts.GatewayConfig, "gateway-config", "deploy/gateway.yaml", "gateway configuration")
	fs.StringVar(&opts.UpstreamHtpasswd, "upstream-htpasswd", "deploy/upstream.htpasswd", "htpasswd file of the upstream registry")
	fs.StringVar(&opts.DataDir, "data", "data/registry", "storage of the upstream registry")
	fs.StringVar(&opts.BinDir, "bin", "bin", "directory of the built tokenserver (relative to -dir), which the printed commands name by its absolute path")
	fs.StringVar(&opts.GatewayAddr, "gateway-addr", "", "gateway listen address (default: listen in the gateway configuration, 127.0.0.1:5000)")
	fs.StringVar(&opts.TokenServerAddr, "tokenserver-addr", "", "token service listen address (default: its configuration, 127.0.0.1:5001)")
	fs.StringVar(&opts.UpstreamAddr, "upstream-addr", "", "upstream registry listen address (default: the host of the gateway's upstream.url, 127.0.0.1:5002)")
	fs.StringVar(&opts.AdminAddr, "admin-addr", "", "token service admin API and web console address, with -licenses sql (default: its admin.listen, 127.0.0.1:5003)")
	fs.StringVar(&opts.GatewayMetricsAddr, "gateway-metrics-addr", "127.0.0.1:0", "gateway /metrics and /debug/pprof/ address (default: a free loopback port, printed)")
	fs.StringVar(&opts.TokenServerMetricsAddr, "tokenserver-metrics-addr", "127.0.0.1:0", "token service /metrics and /debug/pprof/ address (default: a free loopback port, printed)")
	fs.BoolVar(&opts.NoSeed, "no-seed", false, "do not push the demo images")
	fs.BoolVar(&opts.TLS, "tls", false, "serve HTTPS only, with a development CA and a localhost certificate made under -certs when missing")
	fs.StringVar(&opts.CertsDir, "certs", "certs", "directory of the development CA and certificates (with -tls)")
	licenses := fs.String("licenses", "file", "licence backend of the demo: file (deploy/licenses.yaml) or sql (SQLite under data/, demo account made with the accounts CLI, and the web console; make run's default)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		buildinfo.Print(stdout, "devstack")
		return 0
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "devstack: -log-level: %v\n", err)
		return 2
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	switch *licenses {
	case "file":
	case "sql":
		if !flagSet(fs, "tokenserver-config") {
			opts.TokenServerConfig = devstack.SQLConfig
		}
		if err := os.MkdirAll(filepath.Join(opts.Dir, "data"), 0o755); err != nil {
			fmt.Fprintf(stderr, "devstack: %v\n", err)
			return 1
		}
		token, err := devstack.SQLDemoAccount(ctx, filepath.Join(opts.Dir, opts.TokenServerConfig), stderr)
		if err != nil {
			fmt.Fprintf(stderr, "devstack: %v\n", err)
			return 1
		}
		opts.DemoToken = token
	default:
		fmt.Fprintf(stderr, "devstack: -licenses %q: want file or sql\n", *licenses)
		return 2
	}

	st, err := devstack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "devstack: %v\n", err)
		return 1
	}
	st.WriteBanner(stdout)
	if err := st.Wait(); err != nil {
		fmt.Fprintf(stderr, "devstack: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "devstack: stopped")
	return 0
}

func seed(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devstack seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("registry", "127.0.0.1:5002", "registry host:port (plain http)")
	user := fs.String("username", "upstream", "registry user")
	passwordFile := fs.String("password-file", "deploy/upstream.password", "file holding the registry password")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	b, err := os.ReadFile(*passwordFile)
	if err != nil {
		fmt.Fprintf(stderr, "devstack seed: %v\n", err)
		return 1
	}
	h := strings.TrimPrefix(strings.TrimPrefix(*host, "http://"), "https://")
	pushed, err := devstack.Seed(ctx, h, *user, strings.TrimRight(string(b), "\r\n"))
	if err != nil {
		fmt.Fprintf(stderr, "devstack seed: %v\n", err)
		return 1
	}
	refs := make([]string, 0, len(pushed))
	for ref := range pushed {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		fmt.Fprintf(stdout, "pushed %s/%s %s\n", h, ref, pushed[ref])
	}
	return 0
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
