// Package tokenserver is the registry token service: it turns a customer's
// e-mail address and vendor API token into short-lived registry tokens (the
// Docker registry token protocol, GET and the OAuth2 POST form) whose access
// is what the customer's licence allows, plus long-lived refresh tokens that
// survive restarts and work on every replica.
//
// A Server is built from a Config (YAML, see LoadConfig) with New and serves
// with Run or Serve; Handler exposes the routes for in-process use (then
// call Watch so that a licence file is reread when it changes).
//
// Operations notes:
//
//   - Refresh tokens are sealed (AES-256-GCM), not stored. Their key is
//     refresh_token_key_file if set, else derived from the signing key, so
//     rotating the signing key invalidates every refresh token: clients
//     then fail their next refresh and must log in again. To rotate the
//     signing key without that, configure refresh_token_key_file first.
//     During a rotation, list the old public key in publish_keys so that
//     gateways reading the JWKS still accept tokens signed before it.
//   - A refresh token cannot be revoked by itself; every use asks the
//     licence backend again (through the cache, so within cache_ttl), so
//     revoking the licence or the API token ends it.
//   - Set signing_cert only for registries that trust a rootcertbundle:
//     a registry that trusts only a JWKS file refuses tokens with x5c.
//   - Every refused login is one "login failed" line with a reason
//     (license.Reason: unknown_account, wrong_token, disabled, expired,
//     backend_unavailable, rate_limited, malformed), the username as typed
//     (escaped) and the token's fingerprint, and is counted in
//     tokenserver_login_failures_total{reason}; the client's answer is the
//     same whatever the reason.
//   - With usage.secret_file (and licenses.sql), POST /internal/v1/usage
//     takes the gateway's usage events in batches (usage.go): the shared
//     secret compared in constant time, a bounded strict JSON body, one
//     transaction a batch, 503 while the database is down so that the
//     gateway keeps the batch; Watch prunes the store past
//     usage.retention and usage.rollup_retention at start and hourly.
package tokenserver
