// Package ecr keeps the gateway's credential for its upstream registry fresh.
//
// A [Fetcher] obtains a [Credential]: [SDKFetcher] from AWS ECR's
// GetAuthorizationToken (12-hour tokens), [StaticFetcher] from a password file
// for any other registry. A [Source] holds the current credential, refreshes it
// in the background well before it expires, keeps the old one while refreshes
// fail, and collapses concurrent fetches so that a burst of upstream 401s costs
// one call to AWS.
//
// The package owns everything AWS: the SDK client and its [ClientOptions], the
// credential fetch, and the DescribeRepositories [Lister] behind the gateway's
// catalog; no other package imports the SDK (tests aside).
//
// The package knows nothing about HTTP serving or client authentication; the
// gateway puts [Credential.BasicAuth] on upstream requests and reports metrics
// through an [Observer].
package ecr
