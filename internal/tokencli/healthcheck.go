package tokencli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheckTimeout is below the interval of any sensible container
// health check, so that a hung server counts as unhealthy, not as pending.
const healthcheckTimeout = 3 * time.Second

// healthcheck is the container health check of the distroless images, which
// have no curl: exit 0 when the URL answers 2xx, 1 otherwise.
func (e *env) healthcheck(ctx context.Context, args []string) int {
	fs := e.newFlagSet("healthcheck", "[-timeout 3s] URL")
	timeout := fs.Duration("timeout", healthcheckTimeout, "give up after this long")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) != 1 {
		if len(pos) == 0 {
			fmt.Fprintf(e.stderr, "tokenserver healthcheck: missing URL\n\n")
		} else {
			fmt.Fprintf(e.stderr, "tokenserver healthcheck: unexpected argument %q\n\n", pos[1])
		}
		fmt.Fprintln(e.stderr, "usage: tokenserver healthcheck URL   (e.g. http://127.0.0.1:5001/healthz)")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pos[0], nil)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver healthcheck: %v\n", err)
		return exitUsage
	}
	resp, err := e.client.Do(req)
	if err != nil {
		fmt.Fprintf(e.stderr, "unhealthy: %v\n", err)
		return exitFail
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(e.stderr, "unhealthy: %s answered %s\n", pos[0], resp.Status)
		return exitFail
	}
	fmt.Fprintf(e.stdout, "healthy: %s answered %s\n", pos[0], resp.Status)
	return exitOK
}
