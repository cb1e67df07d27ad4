// Package httpx is the HTTP plumbing both services share: handlers that
// return errors, the one adapter that turns those into registry JSON errors
// (what the client sees) and log lines (what the operator sees), the
// middleware chain, and a server with timeouts and graceful shutdown.
//
// It holds no product logic; that lives in the tokenserver and gateway
// packages.
package httpx
