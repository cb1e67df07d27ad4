package clients

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/acme/registry-gateway/internal/devstack"
)

// TestCosign: the vendor signs the stable and beta images upstream with a
// key pair, once in the legacy scheme (a sha256-<hex>.sig tag) and once as
// an OCI 1.1 referrer; the customer verifies both with `cosign verify --key`
// through the gateway, offline: without a transparency log, with an empty
// TUF root, and with every address but the loopback stack's behind a proxy
// that drops each connection (cosign reaches for tuf-repo-cdn.sigstore.dev
// even with --key). Another key does not verify; beta is refused. The
// OCI 1.1 signature is found through the gateway by the referrers API
// where the upstream has it, by the tag schema where it has not.
func TestCosign(t *testing.T) {
	cosign := tool(t, "cosign.sh", "REQUIRE_COSIGN")
	for _, tc := range []struct {
		name string
		api  bool
	}{{"upstream without referrers API", false}, {"upstream with referrers API", true}} {
		t.Run(tc.name, func(t *testing.T) { testCosign(t, cosign, tc.api) })
	}
}

func testCosign(t *testing.T, cosign string, api bool) {
	st := startStack(t, api)
	dir := t.TempDir()
	base := []string{"COSIGN_PASSWORD=", "COSIGN_EXPERIMENTAL=1", "TUF_ROOT=" + filepath.Join(dir, "tuf"),
		"SIGSTORE_NO_CACHE=true"}
	vendorEnv := clientEnv(dir, append(base, "DOCKER_CONFIG="+dockerConfig(t, filepath.Join(dir, "vendor"),
		st.upstream, upstreamUser, st.upstreamPassword))...)
	blocked, attempts := offline(t)
	customerEnv := clientEnv(dir, append(append(base, blocked...), "DOCKER_CONFIG="+dockerConfig(t, filepath.Join(dir, "customer"),
		st.GatewayHost, devstack.DemoUser, devstack.DemoToken))...)

	mustRun(t, dir, vendorEnv, "", cosign, "generate-key-pair")
	other := filepath.Join(dir, "other")
	mustRun(t, dir, vendorEnv, "", "mkdir", other)
	mustRun(t, other, vendorEnv, "", cosign, "generate-key-pair")

	for _, repo := range []string{devstack.LicensedRepo, devstack.UnlicensedRepo} {
		ref := st.upstream + "/" + repo + "@" + st.digest(t, repo+":1.0")
		sign := []string{"sign", "--key", "cosign.key", "--tlog-upload=false", "--allow-insecure-registry", "--yes",
			// The identity the customer sees the image by.
			"--sign-container-identity", st.GatewayHost + "/" + repo}
		mustRun(t, dir, vendorEnv, "", cosign, append(sign, ref)...)
		mustRun(t, dir, vendorEnv, "", cosign, append(sign, "--registry-referrers-mode=oci-1-1", ref)...)
	}

	// Which way the OCI 1.1 signature was stored: the tag schema's index
	// exists upstream only without the API.
	subject := st.digest(t, devstack.LicensedRepo+":1.0")
	tags, err := crane.ListTags(st.upstream+"/"+devstack.LicensedRepo, crane.Insecure,
		crane.WithAuth(&authn.Basic{Username: upstreamUser, Password: st.upstreamPassword}))
	if err != nil {
		t.Fatal(err)
	}
	if fallback := strings.Replace(subject, ":", "-", 1); slices.Contains(tags, fallback) == api {
		t.Fatalf("upstream tags %q: tag schema index %s present with referrers API = %v", tags, fallback, api)
	}

	verify := []string{"verify", "--insecure-ignore-tlog=true", "--offline=true", "--allow-insecure-registry"}
	ref := st.GatewayHost + "/" + devstack.LicensedRepo + "@" + subject
	for _, mode := range []struct {
		name string
		args []string
	}{{"legacy .sig tag", nil}, {"OCI 1.1 referrer", []string{"--experimental-oci11=true"}}} {
		t.Run(mode.name, func(t *testing.T) {
			out := mustRun(t, dir, customerEnv, "", cosign, append(append(append([]string{}, verify...), mode.args...), "--key", "cosign.pub", ref)...)
			if !strings.Contains(out, "The signatures were verified against the specified public key") {
				t.Errorf("cosign verify did not verify:\n%s", out)
			}
			out, err := run(t, dir, customerEnv, "", cosign, append(append(append([]string{}, verify...), mode.args...), "--key", filepath.Join(other, "cosign.pub"), ref)...)
			if err == nil || !strings.Contains(out, "no matching signatures") {
				t.Errorf("verified with another key: %v\n%s", err, out)
			}
			refused(t, true, dir, customerEnv, cosign, append(append(append([]string{}, verify...), mode.args...), "--key", "cosign.pub",
				st.GatewayHost+"/"+devstack.UnlicensedRepo+"@"+st.digest(t, devstack.UnlicensedRepo+":1.0"))...)
		})
	}
	t.Logf("outbound connections cosign tried and the proxy dropped: %d", attempts.Load())
}
