// Command release builds and publishes a release without a Docker daemon
// (internal/release): `make release VERSION=1.4.0 REGISTRY=registry.example.com/acme`
// runs it. It cross-compiles the services, pushes multi-platform OCI images
// of them with an SPDX SBOM each, pushes the Helm chart, prints the digests
// and writes release.json to -out. A vendor's build tool: not shipped.
//
//	release -version 1.4.0 -registry HOST[:PORT][/PATH] [-insecure] [-out DIR]
//	        [-ldflags FLAGS] [-commit REV] [-platforms linux/amd64,linux/arm64]
//	        [-ca-bundle FILE] [-helm PATH] [-source DIR]
//
// Registry logins are docker's (config.json and its credential helpers):
// `docker login`, `crane auth login` or a CI's registry login. The images'
// times come from SOURCE_DATE_EPOCH (the Makefile sets the commit's), so
// that a rebuild of the same commit gives the same digests.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/acme/registry-gateway/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o release.Options
	fs.StringVar(&o.Version, "version", "", "release `version` (SemVer): the images' tag and the chart's version")
	fs.StringVar(&o.Registry, "registry", "", "`HOST[:PORT][/PATH]` to push the images and the chart to")
	fs.BoolVar(&o.Insecure, "insecure", false, "plain HTTP to the registry (a local one)")
	fs.StringVar(&o.OutDir, "out", "", "output `folder`: binaries, SBOMs, chart, release.json (default bin/release/VERSION)")
	fs.StringVar(&o.LDFlags, "ldflags", "", "go build -ldflags (the Makefile passes its LDFLAGS)")
	fs.StringVar(&o.Commit, "commit", "", "source revision for the images' labels")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated `OS/ARCH[/VARIANT]` list")
	fs.StringVar(&o.CABundle, "ca-bundle", release.CABundlePath, "CA bundle `file` the images carry")
	fs.StringVar(&o.Helm, "helm", "helm", "helm v4 `CLI` (make passes scripts/helm.sh's)")
	fs.StringVar(&o.SourceDir, "source", ".", "the repository's root `folder`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "release: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var err error
	if o.Platforms, err = parsePlatforms(*platforms); err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return 2
	}
	if o.Created, err = sourceDate(getenv("SOURCE_DATE_EPOCH")); err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return 2
	}
	if o.OutDir == "" && o.Version != "" {
		o.OutDir = "bin/release/" + o.Version
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, nil))
	if _, err := release.Run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "release:", err)
		return 1
	}
	return 0
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		parts := strings.Split(f, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("-platforms: %q is not OS/ARCH[/VARIANT]", f)
		}
		p := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		out = append(out, p)
	}
	return out, nil
}

// sourceDate reads SOURCE_DATE_EPOCH (reproducible-builds.org): seconds
// since 1970; empty is the zero time, which Run takes as 1970 itself.
func sourceDate(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not seconds since 1970", v)
	}
	return time.Unix(n, 0).UTC(), nil
}
