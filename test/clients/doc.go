// Package clients drives the gateway with the real clients vendors ship
// OCI artifacts with, as a customer holding only the stable channel: helm
// (charts as OCI), cosign (signatures in the legacy .sig tag scheme and as
// OCI 1.1 referrers, verified offline), oras (an SBOM attached upstream,
// discovered and pulled through the gateway), crane and skopeo (a
// two-platform index by platform and whole). Each runs against the
// in-process stack of internal/devstack, whose upstream is the embedded
// distribution registry (no referrers API) or the same behind a fixture that
// answers the referrers API as the OCI distribution spec describes.
//
// The CLIs are built from source by scripts/{helm,cosign,oras}.sh into
// ~/.cache/registry-gateway; skopeo is Debian's. A missing one skips its
// test, unless REQUIRE_HELM, REQUIRE_COSIGN, REQUIRE_ORAS or REQUIRE_SKOPEO
// is 1 (.ci/run sets them all), which makes that a failure.
package clients
