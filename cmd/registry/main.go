// Command registry serves a stock distribution registry (internal/embedreg,
// filesystem storage) on its own: the upstream of the Docker Compose stack,
// built into an image that needs no download, where `make run` embeds the
// same registry in one process. Not part of the product.
//
//	registry -root DIR (-htpasswd FILE | -open) [-addr HOST:PORT]
//	registry -version
//
// GET /healthz answers 200 without credentials, for container health checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/acme/registry-gateway/internal/buildinfo"
	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/httpx"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	addr, root, htpasswd, realm string
	open                        bool
	logLevel                    slog.Level
	registryLogLevel            string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: registry -root DIR (-htpasswd FILE | -open) [-addr HOST:PORT]\n       registry -version")
		fs.PrintDefaults()
	}
	var c config
	fs.StringVar(&c.addr, "addr", "127.0.0.1:5002", "address to serve plain HTTP on")
	fs.StringVar(&c.root, "root", "", "storage directory (created when missing)")
	fs.StringVar(&c.htpasswd, "htpasswd", "", "bcrypt htpasswd `file` of the accounts (reread when it changes)")
	fs.StringVar(&c.realm, "realm", "upstream", "Basic auth realm with -htpasswd")
	fs.BoolVar(&c.open, "open", false, "no authentication: anyone who reaches -addr may push and delete")
	level := fs.String("log-level", "info", "access log level: debug, info, warn or error")
	fs.StringVar(&c.registryLogLevel, "registry-log-level", "error", "level of distribution's own log (logrus levels)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		buildinfo.Print(stdout, "registry")
		return 0
	}
	if err := c.validate(fs.Args(), *level); err != nil {
		fmt.Fprintf(stderr, "registry: %v\n", err)
		fs.Usage()
		return 2
	}

	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	opts := embedreg.Options{RootDir: c.root, LogLevel: c.registryLogLevel}
	if !c.open {
		opts.Htpasswd = &embedreg.HtpasswdAuth{Realm: c.realm, Path: c.htpasswd}
	}
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		log.Error("registry failed to start", slog.Any("error", err))
		return 1
	}
	reg, err := embedreg.New(ctx, opts)
	if err != nil {
		log.Error("registry failed to start", slog.Any("error", err))
		return 1
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		log.Error("registry failed to start", slog.Any("error", err))
		return 1
	}
	// The bound address: with port 0 it is where the kernel put it.
	addr := ln.Addr().String()
	if c.open {
		log.Warn("no authentication (-open): anyone who reaches the address may push and delete", slog.String("addr", addr))
	}
	log.Info("registry serving", slog.String("addr", addr), slog.String("root", c.root), slog.Bool("open", c.open))
	if err := httpx.Serve(ctx, embedreg.NewServer(addr, reg, log), ln, embedreg.Timeouts.Shutdown); err != nil {
		log.Error("registry stopped", slog.Any("error", err))
		return 1
	}
	log.Info("registry stopped")
	return 0
}

// validate reports every problem of the command line at once.
func (c *config) validate(rest []string, level string) error {
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", rest))
	}
	if c.addr == "" {
		errs = append(errs, errors.New("-addr is empty"))
	}
	if c.root == "" {
		errs = append(errs, errors.New("-root is required"))
	}
	// Fail closed: an open registry has to be asked for.
	switch {
	case c.open && c.htpasswd != "":
		errs = append(errs, errors.New("-open and -htpasswd exclude each other"))
	case !c.open && c.htpasswd == "":
		errs = append(errs, errors.New("-htpasswd FILE is required (or -open for no authentication)"))
	case c.htpasswd != "":
		if _, err := os.Stat(c.htpasswd); err != nil {
			errs = append(errs, fmt.Errorf("-htpasswd: %w", err))
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	if _, err := logrus.ParseLevel(c.registryLogLevel); err != nil {
		errs = append(errs, fmt.Errorf("-registry-log-level: %w", err))
	}
	return errors.Join(errs...)
}
