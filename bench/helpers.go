package bench

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/acme/registry-gateway/bench/fixtures"
	"github.com/acme/registry-gateway/bench/profile"
	"github.com/acme/registry-gateway/bench/signer"
)

// Helper runs the helper process that args name — `fixtures`, `signer` or
// `serve`, which the harness starts by re-executing its own program — and
// reports whether args named one. cmd/bench and the harness's tests (whose
// binary stands in for cmd/bench) both call it, so that both parse the
// command lines the harness writes alike.
func Helper(ctx context.Context, args []string, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "fixtures":
		return runFixtures(ctx, args[1:], stderr), true
	case "signer":
		return runSigner(ctx, args[1:], stderr), true
	case "serve":
		return runServe(ctx, args[1:], stderr), true
	}
	return 0, false
}

func runFixtures(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench fixtures", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "storage directory of the upstream registry")
	size := fs.Int64("blob-size", 256<<20, "bytes of the synthetic blob")
	addrs := fs.String("addrs", "", "file to write the addresses to")
	if err := fs.Parse(args); err != nil || *dir == "" || *addrs == "" {
		fmt.Fprintln(stderr, "usage: bench fixtures -dir DIR -addrs FILE [-blob-size N]")
		return 2
	}
	if err := fixtures.Serve(ctx, *dir, *size, *addrs); err != nil {
		fmt.Fprintf(stderr, "bench fixtures: %v\n", err)
		return 1
	}
	return 0
}

func runSigner(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench signer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	key := fs.String("key", "", "PEM private key")
	if err := fs.Parse(args); err != nil || *key == "" {
		fmt.Fprintln(stderr, "usage: bench signer -listen ADDR -key FILE")
		return 2
	}
	if err := signer.Serve(ctx, *listen, *key); err != nil {
		fmt.Fprintf(stderr, "bench signer: %v\n", err)
		return 1
	}
	return 0
}

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: bench serve gateway|tokenserver -config FILE -pprof ADDR")
		return 2
	}
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "configuration file of the server")
	pprofAddr := fs.String("pprof", "127.0.0.1:0", "address of the pprof listener")
	if err := fs.Parse(args[1:]); err != nil || *config == "" {
		fmt.Fprintln(stderr, "usage: bench serve gateway|tokenserver -config FILE -pprof ADDR")
		return 2
	}
	if err := profile.Serve(ctx, args[0], *config, *pprofAddr, stderr); err != nil {
		fmt.Fprintf(stderr, "bench serve: %v\n", err)
		return 1
	}
	return 0
}
