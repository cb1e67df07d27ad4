// Package httpx is the HTTP plumbing both services share: handlers that
// return errors, the one adapter that turns those into registry JSON errors
// (what the client sees) and the one access line a request (what the
// operator sees: the failure's cause rides on the request's Record), the
// middleware chain, a server with timeouts and graceful shutdown, the
// edge of the clients' listener (who the client is behind trusted proxies,
// a send timeout for clients that stop reading, connection limits) and the
// operators' listener (metrics and pprof, never served to clients).
//
// It holds no product logic; that lives in the tokenserver and gateway
// packages.
package httpx
