package clients

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/devstack"
)

// platformDigests are the digests of the platform manifests of a demo
// image's index, read upstream, by architecture.
func platformDigests(t *testing.T, st *stack, repo string) map[string]string {
	t.Helper()
	ref, err := name.ParseReference(st.upstream+"/"+repo+":1.0", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithAuth(&authn.Basic{Username: upstreamUser, Password: st.upstreamPassword}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range m.Manifests {
		out[d.Platform.Architecture] = d.Digest.String()
	}
	if len(out) != 2 {
		t.Fatalf("the demo index has %d platforms, want 2", len(out))
	}
	return out
}

// mirror is a registry of the test's own (go-containerregistry's, in
// memory) to copy to; it returns its host:port.
func mirror(t *testing.T) string {
	dst := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(dst.Close)
	return strings.TrimPrefix(dst.URL, "http://")
}

// TestCrane: crane (go-containerregistry, as a library: the crane CLI is
// its thin main) through the gateway: the digest and the image of one
// platform of the two-platform index, and `crane copy` of the whole index,
// digests preserved; beta refused with the channel named.
func TestCrane(t *testing.T) {
	st := startStack(t, false)
	platforms := platformDigests(t, st, devstack.LicensedRepo)
	opts := []crane.Option{crane.Insecure, crane.WithAuth(&authn.Basic{Username: devstack.DemoUser, Password: devstack.DemoToken})}
	src := st.GatewayHost + "/" + devstack.LicensedRepo + ":1.0"
	for arch, want := range platforms {
		p := crane.WithPlatform(&v1.Platform{OS: "linux", Architecture: arch})
		got, err := crane.Digest(src, append(opts, p)...)
		if err != nil || got != want {
			t.Errorf("crane digest --platform linux/%s: %s, %v; want %s", arch, got, err, want)
		}
		img, err := crane.Pull(src, append(opts, p)...)
		if err != nil {
			t.Fatalf("crane pull --platform linux/%s: %v", arch, err)
		}
		if cf, err := img.ConfigFile(); err != nil || cf.Architecture != arch {
			t.Errorf("crane pull --platform linux/%s: config %+v, %v", arch, cf, err)
		}
		if d, err := img.Digest(); err != nil || d.String() != want {
			t.Errorf("crane pull --platform linux/%s: digest %s, %v", arch, d, err)
		}
	}

	// crane copy, every platform: to a registry of the test's own.
	to := mirror(t) + "/mirror/hello:1.0"
	if err := crane.Copy(src, to, opts...); err != nil {
		t.Fatalf("crane copy: %v", err)
	}
	if got, err := crane.Digest(to, crane.Insecure); err != nil || got != st.digest(t, devstack.LicensedRepo+":1.0") {
		t.Errorf("crane copy: the copy's digest %s, %v; want the index's %s", got, err, st.digest(t, devstack.LicensedRepo+":1.0"))
	}
	for arch, want := range platforms {
		if _, err := crane.Manifest(strings.TrimSuffix(to, ":1.0")+"@"+want, crane.Insecure); err != nil {
			t.Errorf("crane copy: linux/%s not copied: %v", arch, err)
		}
	}

	_, err := crane.Digest(st.GatewayHost+"/"+devstack.UnlicensedRepo+":1.0", opts...)
	if err == nil || !strings.Contains(err.Error(), unlicensedMessage) {
		t.Errorf("crane digest of beta: %v; want the refusal naming the channel", err)
	}
}

// TestSkopeoPlatforms: skopeo (containers/image, Debian's) through the
// gateway: one platform of the index by --override-arch, and the whole
// index with `copy --all --preserve-digests`; beta refused with the
// channel named.
func TestSkopeoPlatforms(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("REQUIRE_SKOPEO") == "1" {
			t.Fatal("skopeo is not installed and REQUIRE_SKOPEO=1: apt-get install -y skopeo")
		}
		t.Skip("skopeo is not installed (apt-get install -y skopeo); REQUIRE_SKOPEO=1 turns this skip into a failure")
	}
	st := startStack(t, false)
	platforms := platformDigests(t, st, devstack.LicensedRepo)
	dir := t.TempDir()
	env := clientEnv(dir, "REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"))
	creds := []string{"--tls-verify=false", "--creds", devstack.DemoUser + ":" + devstack.DemoToken}
	src := "docker://" + st.GatewayHost + "/" + devstack.LicensedRepo + ":1.0"
	for arch := range platforms {
		out := mustRun(t, dir, env, "", skopeo, append(append([]string{"--override-arch", arch, "--override-os", "linux", "inspect"}, creds...), src)...)
		var v struct{ Architecture string }
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Architecture != arch {
			t.Errorf("skopeo --override-arch %s inspect: %+v, %v", arch, v, err)
		}
	}

	// The whole index, byte for byte, to a registry of the test's own.
	to := mirror(t) + "/mirror/hello"
	mustRun(t, dir, env, "", skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", devstack.DemoUser+":"+devstack.DemoToken, src, "docker://"+to+":1.0")
	if got, err := crane.Digest(to+":1.0", crane.Insecure); err != nil || got != st.digest(t, devstack.LicensedRepo+":1.0") {
		t.Errorf("skopeo copy --all --preserve-digests: the copy's digest %s, %v; want the index's %s", got, err, st.digest(t, devstack.LicensedRepo+":1.0"))
	}
	for arch, want := range platforms {
		if _, err := crane.Manifest(to+"@"+want, crane.Insecure); err != nil {
			t.Errorf("skopeo copy --all: linux/%s not copied: %v", arch, err)
		}
	}

	refused(t, true, dir, env, skopeo, append(append([]string{"--override-arch", "arm64", "inspect"}, creds...),
		"docker://"+st.GatewayHost+"/"+devstack.UnlicensedRepo+":1.0")...)
	refused(t, true, dir, env, skopeo, "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
		"--src-creds", devstack.DemoUser+":"+devstack.DemoToken,
		"docker://"+st.GatewayHost+"/"+devstack.UnlicensedRepo+":1.0", "docker://"+to+":beta")
}
