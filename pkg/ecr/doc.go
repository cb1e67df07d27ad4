// Package ecr is the upstream provider for AWS ECR (upstream.ecr in the
// gateway's configuration): an implementation of the upstream package's
// contract.
//
// [SDKFetcher] obtains an [upstream.Credential] from ECR's
// GetAuthorizationToken (12-hour tokens); the gateway keeps it fresh with an
// [upstream.Source]. The DescribeRepositories [Lister] lists the registry
// for the gateway's catalog. ECR answers blob GETs with redirects to
// SigV4-presigned S3 URLs, whose expiry [Provider.RedirectExpiry] reads
// (package presign).
//
// The package owns everything AWS: the SDK client and its [ClientOptions];
// no other package imports the SDK (tests aside). It knows nothing about
// HTTP serving or client authentication.
package ecr
