package release

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/testsupport/dockertest"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// helmCLI is $HELM, or where scripts/helm.sh caches the pinned helm.
func helmCLI(t *testing.T) string {
	return testutil.CachedTool(t, repoRoot, "helm.sh", "HELM", "REQUIRE_HELM")
}

// elfMachines maps GOARCH to the ELF machine a binary for it declares.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// binaryMachine is the ELF machine of the file at path (no leading "/")
// in the image's layers.
func binaryMachine(t *testing.T, img v1.Image, path string) elf.Machine {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != path {
				continue
			}
			// The ELF header is enough: e_machine is its 19th and 20th byte
			// (little-endian on both platforms); reading no further keeps
			// the test from inflating every binary under -race.
			var hdr [20]byte
			_, err = io.ReadFull(tr, hdr[:])
			rc.Close()
			if err != nil || !bytes.Equal(hdr[:4], []byte(elf.ELFMAG)) || elf.Data(hdr[elf.EI_DATA]) != elf.ELFDATA2LSB {
				t.Fatalf("%s: not a little-endian ELF file (%v)", path, err)
			}
			return elf.Machine(binary.LittleEndian.Uint16(hdr[18:20]))
		}
		rc.Close()
	}
	t.Fatalf("no %s in the image", path)
	return 0
}

// The whole release against a local registry: the services built for both
// platforms, pushed as image indexes with the right platforms, users and
// binaries, each with its SBOM as a referrer; the chart pushed and
// rendered by helm from the registry, pointing at the pushed images; and
// the gateway image pulled and run by a real Docker engine.
func TestRelease(t *testing.T) {
	helm := helmCLI(t)
	ca := testCA(t)
	host := newRegistry(t)

	// Nothing of the machine's: helm's and docker's configuration (logins)
	// are the test's own; the docker config.json exists, so that helm is
	// handed it with --registry-config.
	home := t.TempDir()
	for _, v := range []string{"HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME", "DOCKER_CONFIG"} {
		t.Setenv(v, filepath.Join(home, v))
	}
	if err := os.MkdirAll(os.Getenv("DOCKER_CONFIG"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	const version = "0.0.0-test.1"
	out := t.TempDir()
	var stdout bytes.Buffer
	res, err := Run(t.Context(), Options{
		Version: version, Registry: host, Insecure: true, OutDir: out, SourceDir: repoRoot, Helm: helm, CABundle: ca,
		LDFlags: "-X github.com/acme/registry-gateway/internal/buildinfo.version=" + version,
		Commit:  "0123456789abcdef",
		Log:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("release printed:\n%s", stdout.String())

	ropts := []remote.Option{remote.WithContext(t.Context())}
	if len(res.Images) != len(Images) {
		t.Fatalf("%d images pushed", len(res.Images))
	}
	for i, ir := range res.Images {
		spec := Images[i]
		if want := host + "/" + spec.Repository + ":" + version; ir.Ref != want {
			t.Errorf("ref %s, want %s", ir.Ref, want)
		}
		if !strings.Contains(stdout.String(), ir.Ref+"@"+ir.Digest) {
			t.Errorf("the digest of %s was not printed", ir.Ref)
		}
		ref, err := name.ParseReference(ir.Ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref, ropts...)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 2 {
			t.Fatalf("%s: %d manifests", ir.Ref, len(im.Manifests))
		}
		for j, d := range im.Manifests {
			want := DefaultPlatforms[j]
			if d.Platform == nil || d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture {
				t.Errorf("%s manifest %d: platform %+v, want %s", ir.Ref, j, d.Platform, platformString(want))
				continue
			}
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != want.OS || cf.Architecture != want.Architecture || cf.Config.User != User ||
				cf.Config.Labels["org.opencontainers.image.revision"] != "0123456789abcdef" {
				t.Errorf("%s %s: config os %s arch %s user %q labels %v", ir.Ref, platformString(want), cf.OS, cf.Architecture, cf.Config.User, cf.Config.Labels)
			}
			for _, b := range spec.Binaries {
				if m := binaryMachine(t, img, b); m != elfMachines[want.Architecture] {
					t.Errorf("%s %s: /%s is built for %v", ir.Ref, platformString(want), b, m)
				}
			}
		}
		refs, err := remote.Referrers(ref.Context().Digest(ir.Digest), ropts...)
		if err != nil {
			t.Fatal(err)
		}
		rim, err := refs.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(rim.Manifests) != 1 || rim.Manifests[0].ArtifactType != SBOMMediaType {
			t.Errorf("%s: referrers %+v, want one SBOM", ir.Ref, rim.Manifests)
		}
		sbom, err := os.ReadFile(ir.SBOMFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"pkg:golang/github.com/prometheus/client_golang@`, `"pkg:golang/stdlib@`, `#cmd/` + spec.Name + `"`} {
			if !bytes.Contains(sbom, []byte(want)) {
				t.Errorf("%s: no %s in it", ir.SBOMFile, want)
			}
		}
	}
	var written Result
	if b, err := os.ReadFile(filepath.Join(out, "release.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &written); err != nil {
		t.Fatal(err)
	}
	if written.Chart.Digest != res.Chart.Digest || len(written.Images) != len(res.Images) || written.Images[1].Digest != res.Images[1].Digest {
		t.Errorf("release.json %+v differs from the result %+v", written, res)
	}

	// The chart, from the registry, renders the release's images.
	if want := "oci://" + host + "/charts/registry-gateway:" + version; res.Chart.Ref != want || !strings.HasPrefix(res.Chart.Digest, "sha256:") {
		t.Errorf("chart %+v, want %s", res.Chart, want)
	}
	rendered, err := exec.CommandContext(t.Context(), helm, "template", "rg", "oci://"+host+"/charts/registry-gateway",
		"--version", version, "--plain-http").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template from the registry: %v\n%s", err, rendered)
	}
	for _, ir := range res.Images {
		if !strings.Contains(string(rendered), `image: "`+ir.Ref+`"`) {
			t.Errorf("the chart does not render image %s", ir.Ref)
		}
	}

	// A real Docker engine pulls the gateway's image for its platform and
	// runs it on a read-only root as the image's user.
	if _, ok := elfMachines[runtime.GOARCH]; !ok || runtime.GOOS != "linux" {
		t.Skipf("no image for %s/%s to run", runtime.GOOS, runtime.GOARCH)
	}
	d := dockertest.Start(t, dockertest.Options{})
	for _, ir := range res.Images {
		if out, err := d.Docker(t.Context(), "", "pull", ir.Ref); err != nil {
			t.Fatalf("docker pull %s: %v\n%s", ir.Ref, err, out)
		}
		out, err := d.Docker(t.Context(), "", "run", "--rm", "--read-only", "--network", "none", ir.Ref, "--version")
		if err != nil {
			t.Fatalf("docker run %s --version: %v\n%s", ir.Ref, err, out)
		}
		if want := ir.Name + " version " + version + ","; !strings.HasPrefix(strings.TrimSpace(out), want) {
			t.Errorf("docker run %s --version: %q, want %q…", ir.Ref, out, want)
		}
		user, err := d.Docker(t.Context(), "", "image", "inspect", "--format", "{{.Config.User}} {{.Architecture}}", ir.Ref)
		if err != nil || strings.TrimSpace(user) != User+" "+runtime.GOARCH {
			t.Errorf("docker image inspect %s: %q %v", ir.Ref, user, err)
		}
	}
}

// helm's failures end the release with helm's own words: a chart that
// does not package, a registry that cannot be reached.
func TestChartErrors(t *testing.T) {
	helm := helmCLI(t)
	t.Setenv("HELM_CONFIG_HOME", t.TempDir())
	t.Setenv("HELM_CACHE_HOME", t.TempDir())
	t.Setenv("HELM_DATA_HOME", t.TempDir())

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "values.yaml"), []byte("image:\n  registry: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := packageChart(t.Context(), helm, broken, t.TempDir(), t.TempDir(), "1.2.3", "1.2.3", "r.example.com")
	if err == nil || !strings.Contains(err.Error(), "helm package") || !strings.Contains(err.Error(), "Chart.yaml") {
		t.Errorf("a chart without Chart.yaml: %v", err)
	}

	out := t.TempDir()
	tgz, err := packageChart(t.Context(), helm, filepath.Join(repoRoot, "charts", ChartName), t.TempDir(), out, "1.2.3", "v1.2.3", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	err = pushChart(t.Context(), helm, tgz, "127.0.0.1:1", "", true)
	if err == nil || !strings.Contains(err.Error(), "helm push "+tgz+" oci://127.0.0.1:1/charts --plain-http") || !strings.Contains(err.Error(), "connect") {
		t.Errorf("push to a closed port: %v", err)
	}
}
