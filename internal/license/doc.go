// Package license answers one question for the token service: which release
// channels ("stable", "beta", …) does this account hold?
//
// Customers log in to the registry with their e-mail address and the API
// token they already have with the vendor. A [Backend] turns the token into
// a [License] (naming the owner's e-mail address when it knows it) or one of
// two errors; the [Cache] in front of it checks the e-mail of the
// [Credentials] against that owner. The token service only needs to tell the
// errors apart:
//
//   - [ErrBadCredentials]: unknown user, wrong token and expired licence all
//     look the same to the client, so that it cannot probe which accounts
//     exist; the error is a [CredentialsError] whose [Reason] tells them
//     apart in the operator's log and metrics.
//   - [ErrUnavailable]: the backend could not give a trustworthy answer; the
//     caller fails closed with 503 rather than guessing.
//
// The backends live in packages of their own, each with the section of the
// configuration it reads (a [BackendConfig], decoded by its Decode):
// filebackend reads a YAML file of token hashes (for on-premises installs
// and demos), httpbackend asks the vendor's licence API, sqlbackend uses
// the account database of internal/accounts. Package backends holds the
// registry of them, the licenses section, and opens the configured one
// behind a [Cache], so that a `docker pull` of many layers does not turn
// into many backend calls. Look-ups, the cache and the collapsing of
// concurrent look-ups are keyed on the token alone, so usernames cost
// nothing. A backend that is also a [Prober] is probed by [Cache.Monitor]
// while it fails, so that readiness recovers without logins.
package license
