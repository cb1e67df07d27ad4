// Package tokenserver is the registry token service: it turns a customer's
// e-mail address and vendor API token into short-lived registry tokens (the
// Docker registry token protocol, GET and the OAuth2 POST form) whose access
// is what the customer's licence allows, plus long-lived refresh tokens that
// survive restarts and work on every replica.
//
// A Server is built from a Config (YAML, see LoadConfig) with New and serves
// with Run or Serve; Handler exposes the routes for in-process use.
package tokenserver
