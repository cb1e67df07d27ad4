package release

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"
	"go.yaml.in/yaml/v3"

	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/acme/registry-gateway/internal/embedreg"
)

// repoRoot is the repository's root, from this package's folder.
const repoRoot = "../.."

// probe is testdata/probe built once for the package's tests: a Go binary
// with build information (a test binary records no dependencies).
var probe string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "release-test")
	if err != nil {
		panic(err)
	}
	probe = filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-o", probe, "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building testdata/probe: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testCA is a CA bundle with one certificate: the machine's own bundle
// when it has one (what a release carries), else nothing to test with.
func testCA(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(CABundlePath); err != nil {
		t.Skipf("no CA bundle at %s (apt-get install ca-certificates)", CABundlePath)
	}
	return CABundlePath
}

// newRegistry serves a stock distribution registry (filesystem storage, no
// authentication) on 127.0.0.1 for the test and returns its host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	// "fatal": the registry logs every 404 of a push's existence checks.
	h, err := embedreg.New(t.Context(), embedreg.Options{RootDir: t.TempDir(), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Every problem of the options comes back at once, before anything is
// built; each names what to fix.
func TestOptionProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"nothing", Options{}, []string{"VERSION is required", "REGISTRY is required", "no output folder", "no helm CLI"}},
		{"a commit, not a version", Options{Version: "6421c70", Registry: "r.example.com"}, []string{`VERSION "6421c70" is not a release version`}},
		{"build metadata", Options{Version: "1.2.3+linux", Registry: "r.example.com"}, []string{`VERSION "1.2.3+linux" is not a release version`}},
		{"leading zero", Options{Version: "1.02.3", Registry: "r.example.com"}, []string{"is not a release version"}},
		{"scheme", Options{Version: "1.2.3", Registry: "https://r.example.com"}, []string{"without a scheme"}},
		{"bad registry", Options{Version: "1.2.3", Registry: "r.example.com/UPPER"}, []string{`REGISTRY "r.example.com/UPPER"`}},
		{"missing helm", Options{Version: "1.2.3", Registry: "r.example.com", Helm: "/nonexistent/helm"}, []string{"helm CLI /nonexistent/helm", "make helm"}},
		{"not the root", Options{Version: "1.2.3", Registry: "r.example.com", SourceDir: t.TempDir()}, []string{"SourceDir must be the repository's root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(t.Context(), tc.o, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// And the good ones pass this stage.
	for _, v := range []string{"1.2.3", "v1.2.3", "0.1.0-rc.1", "2.0.0-alpha-2.x"} {
		o := Options{Version: v, Registry: "r.example.com:5000/acme/", OutDir: "out", Helm: os.Args[0], SourceDir: repoRoot}
		if err := o.check(); err != nil {
			t.Errorf("%s: %v", v, err)
		}
		if o.Registry != "r.example.com:5000/acme" {
			t.Errorf("registry %q: trailing slash kept", o.Registry)
		}
	}
}

func TestCABundleProblems(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		notPEM:                       "no PEM certificate in it",
		filepath.Join(dir, "absent"): "no such file",
	} {
		o := Options{Version: "1.2.3", Registry: "r.example.com", OutDir: filepath.Join(dir, "out"), Helm: os.Args[0], SourceDir: repoRoot, CABundle: file}
		_, err := Run(t.Context(), o, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CA bundle %s: error %v, want %q", file, err, want)
		}
	}
}

// A failed build ends the release before anything is pushed, with go
// build's message (here at once: a platform Go does not know, rather than
// a compile error after minutes of compiling).
func TestBuildError(t *testing.T) {
	o := Options{
		Version: "1.2.3", Registry: "127.0.0.1:1", Insecure: true, OutDir: t.TempDir(), Helm: os.Args[0],
		SourceDir: repoRoot, CABundle: testCA(t),
		Platforms: []v1.Platform{{OS: "linux", Architecture: "pdp11"}},
	}
	_, err := Run(t.Context(), o, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "go build for linux/pdp11") || !strings.Contains(err.Error(), "unsupported GOOS/GOARCH pair linux/pdp11") {
		t.Fatalf("error %v", err)
	}
}

// The images are the chart's: same repositories, and the Dockerfile's
// entrypoints.
func TestImagesMatchChartAndDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "charts", ChartName, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range Images {
		section, _ := values[img.Name].(map[string]any)
		if got := section["repository"]; got != img.Repository {
			t.Errorf("chart's %s.repository is %v; the release pushes %s", img.Name, got, img.Repository)
		}
		target := "FROM base AS " + img.Name + "\n"
		i := bytes.Index(dockerfile, []byte(target))
		if i < 0 {
			t.Errorf("Dockerfile: no target %s", img.Name)
			continue
		}
		stage := string(dockerfile[i+len(target):])
		if j := strings.Index(stage, "\nFROM "); j >= 0 {
			stage = stage[:j]
		}
		entry := `ENTRYPOINT ["` + strings.Join(img.Entrypoint, `", "`) + `"]`
		if !strings.Contains(stage, entry) {
			t.Errorf("Dockerfile target %s has no %s", img.Name, entry)
		}
	}
}

// The packaged chart points at the release's registry; every other byte
// of values.yaml (its documentation) is kept.
func TestSetImageRegistry(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(repoRoot, "charts", ChartName, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(f, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setImageRegistry(f, "127.0.0.1:5000/acme"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	a, b := strings.Split(string(orig), "\n"), strings.Split(string(got), "\n")
	if len(a) != len(b) {
		t.Fatalf("%d lines became %d", len(a), len(b))
	}
	var changed []string
	for i := range a {
		if a[i] != b[i] {
			changed = append(changed, b[i])
		}
	}
	if !slices.Equal(changed, []string{`  registry: "127.0.0.1:5000/acme"`}) {
		t.Errorf("changed lines %q", changed)
	}

	if err := os.WriteFile(f, []byte("image:\n  tag: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := setImageRegistry(f, "r"); err == nil || !strings.Contains(err.Error(), "no one-line image.registry") {
		t.Errorf("values without image.registry: %v", err)
	}
}

// fakeLayers are one platform's layers over small stand-ins of the
// binaries (images are tested here without compiling the services).
func fakeLayers(t *testing.T, p v1.Platform, created time.Time) *platformLayers {
	t.Helper()
	dir := t.TempDir()
	for _, n := range Binaries() {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("binary "+n+" for "+platformString(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := readCABundle(testCA(t))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := newPlatformLayers(ca, dir, Binaries(), created)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// layerFiles lists a layer's tar entries as "name mode uid:gid".
func layerFiles(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name+" "+strings.TrimPrefix(h.FileInfo().Mode().String(), "-")+" "+strconv.Itoa(h.Uid)+":"+strconv.Itoa(h.Gid))
	}
}

// An index of the gateway: one image a platform, each with its platform's
// OS and architecture, the non-root user, the Dockerfile's entrypoint,
// port and health check, and root-owned files; built twice from the same
// input it has the same digest.
func TestIndexContents(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	gateway := Images[1]
	var layers []*platformLayers
	for _, p := range DefaultPlatforms {
		layers = append(layers, fakeLayers(t, p, created))
	}
	idx, err := buildIndex(gateway, DefaultPlatforms, layers, created, map[string]string{"l": "v"}, map[string]string{"a": "v"})
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || im.Annotations["a"] != "v" || len(im.Manifests) != 2 {
		t.Fatalf("index %+v", im)
	}
	for i, d := range im.Manifests {
		want := DefaultPlatforms[i]
		if d.Platform == nil || d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture {
			t.Errorf("manifest %d: platform %+v, want %+v", i, d.Platform, want)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		mt, _ := img.MediaType()
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if mt != types.OCIManifestSchema1 || cf.OS != want.OS || cf.Architecture != want.Architecture || c.User != "65532:65532" ||
			!slices.Equal(c.Entrypoint, []string{"/gateway"}) || c.Labels["l"] != "v" || !cf.Created.Equal(created) {
			t.Errorf("%s: media type %s, config %+v", platformString(want), mt, cf)
		}
		if _, ok := c.ExposedPorts["5000/tcp"]; !ok || c.Healthcheck == nil ||
			!slices.Equal(c.Healthcheck.Test, []string{"CMD", "/tokenserver", "healthcheck", "http://127.0.0.1:5000/healthz"}) {
			t.Errorf("%s: ports %v, health check %+v", platformString(want), c.ExposedPorts, c.Healthcheck)
		}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, l := range ls {
			if lmt, _ := l.MediaType(); lmt != types.OCILayer {
				t.Errorf("layer media type %s", lmt)
			}
			files = append(files, layerFiles(t, l)...)
		}
		wantFiles := []string{
			"etc/ drwxr-xr-x 0:0", "etc/group rw-r--r-- 0:0", "etc/passwd rw-r--r-- 0:0",
			"etc/ssl/ drwxr-xr-x 0:0", "etc/ssl/certs/ drwxr-xr-x 0:0", "etc/ssl/certs/ca-certificates.crt rw-r--r-- 0:0",
			"tokenserver rwxr-xr-x 0:0", "gateway rwxr-xr-x 0:0",
		}
		if !slices.Equal(files, wantFiles) {
			t.Errorf("%s: files\n%q\nwant\n%q", platformString(want), files, wantFiles)
		}
	}

	again, err := buildIndex(gateway, DefaultPlatforms, []*platformLayers{
		fakeLayers(t, DefaultPlatforms[0], created), fakeLayers(t, DefaultPlatforms[1], created),
	}, created, map[string]string{"l": "v"}, map[string]string{"a": "v"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := idx.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("the same input gave %s and %s", d1, d2)
	}
}

// testBinary describes the probe, standing in for a service.
func testBinary(t *testing.T, name string, p v1.Platform) Binary {
	t.Helper()
	b, err := readBinary(name, p, probe)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadBinaryNotGo(t *testing.T) {
	f := filepath.Join(t.TempDir(), "gateway")
	if err := os.WriteFile(f, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := readBinary("gateway", DefaultPlatforms[0], f); err == nil || !strings.Contains(err.Error(), "no Go build information") {
		t.Errorf("error %v", err)
	}
}

// The SBOM is valid SPDX 2.3 JSON that lists the image, each binary with
// its hash, and every module compiled in with its version and package URL,
// as the binary's build information says.
func TestSBOM(t *testing.T) {
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	var bins []Binary
	for _, p := range DefaultPlatforms {
		bins = append(bins, testBinary(t, "tokenserver", p), testBinary(t, "gateway", p))
	}
	doc, err := SBOM(SBOMInput{Image: Images[1], Version: "1.2.3", Repo: "r.example.com/registry-gateway/gateway", Digest: digest, Binaries: bins, Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := encodeSBOM(doc)
	if err != nil {
		t.Fatal(err)
	}
	read, err := spdxjson.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the SBOM does not read back: %v", err)
	}
	if err := spdxlib.ValidateDocument(read); err != nil {
		t.Fatal(err)
	}
	if read.SPDXVersion != "SPDX-2.3" || read.DataLicense != "CC0-1.0" || read.CreationInfo == nil || read.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Errorf("document header %+v %+v", read, read.CreationInfo)
	}
	if !strings.Contains(read.DocumentNamespace, digest.Hex) {
		t.Errorf("namespace %s does not name the index", read.DocumentNamespace)
	}
	purls := map[string]*spdx.Package{}
	for _, p := range read.Packages {
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				purls[r.Locator] = p
			}
		}
	}
	self := bins[0].Info
	purlMod := "pkg:golang/github.com/package-url/packageurl-go@" + modVersion(t, "github.com/package-url/packageurl-go")
	for _, want := range []string{
		"pkg:oci/gateway@sha256:" + digest.Hex + "?repository_url=r.example.com%2Fregistry-gateway%2Fgateway&tag=1.2.3",
		"pkg:golang/github.com/acme/registry-gateway@1.2.3?goarch=amd64&goos=linux#internal/release/testdata/probe",
		"pkg:golang/github.com/acme/registry-gateway@1.2.3?goarch=arm64&goos=linux#internal/release/testdata/probe",
		"pkg:golang/stdlib@" + strings.TrimPrefix(self.GoVersion, "go"),
		purlMod,
		"pkg:golang/go.yaml.in/yaml/v3@" + modVersion(t, "go.yaml.in/yaml/v3"),
	} {
		if purls[want] == nil {
			t.Errorf("no package with purl %s", want)
		}
	}
	if p := purls[purlMod]; p != nil && (p.PackageName != "github.com/package-url/packageurl-go" || !strings.HasPrefix(p.PackageVersion, "v0.")) {
		t.Errorf("packageurl-go: %+v", p)
	}
	if len(self.Deps) < 2 {
		t.Errorf("the probe links %d modules; want packageurl-go and yaml at least", len(self.Deps))
	}
	// Modules are listed once; each binary links each of them.
	var links, contains, describes int
	for _, r := range read.Relationships {
		switch r.Relationship {
		case "STATIC_LINK":
			links++
		case "CONTAINS":
			contains++
		case "DESCRIBES":
			describes++
		}
	}
	if want := len(bins) * (len(self.Deps) + 1); links != want || contains != len(bins) || describes != 1 {
		t.Errorf("%d STATIC_LINK (want %d), %d CONTAINS, %d DESCRIBES", links, want, contains, describes)
	}
	if want := 1 + len(bins) + 1 + len(self.Deps); len(read.Packages) != want {
		t.Errorf("%d packages, want %d (image, binaries, stdlib, modules)", len(read.Packages), want)
	}
	var binaries int
	for _, p := range read.Packages {
		if !strings.HasPrefix(string(p.PackageSPDXIdentifier), "Binary-") {
			continue
		}
		binaries++
		if len(p.PackageChecksums) != 1 || p.PackageChecksums[0].Value != bins[0].SHA256 || p.PrimaryPackagePurpose != "APPLICATION" ||
			!strings.Contains(p.PackageComment, "-trimpath=true") || !strings.Contains(p.PackageComment, "CGO_ENABLED=0") {
			t.Errorf("binary %s: checksums %+v, purpose %s, comment %q", p.PackageSPDXIdentifier, p.PackageChecksums, p.PrimaryPackagePurpose, p.PackageComment)
		}
	}
	if binaries != len(bins) {
		t.Errorf("%d binaries in the SBOM, want %d", binaries, len(bins))
	}
}

// modVersion is the version go.mod requires of a module.
func modVersion(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", path).Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// pushImage pushes the index and its SBOM as a referrer: the registry
// lists the SBOM among the index's referrers (here through the referrers
// tag schema: distribution has no referrers API), and its one layer is the
// file written to the output folder.
func TestPushImageAndSBOMReferrer(t *testing.T) {
	host := newRegistry(t)
	created := time.Unix(1700000000, 0).UTC()
	o := Options{Version: "1.2.3", Registry: host, Insecure: true, OutDir: t.TempDir(), Created: created}
	if err := o.check(); err == nil || strings.Contains(err.Error(), "VERSION") || strings.Contains(err.Error(), "REGISTRY") {
		t.Fatalf("check: %v", err) // only the helm and SourceDir problems are expected
	}
	var layers []*platformLayers
	var bins []map[string]Binary
	for _, p := range DefaultPlatforms {
		layers = append(layers, fakeLayers(t, p, created))
		bins = append(bins, map[string]Binary{"tokenserver": testBinary(t, "tokenserver", p), "gateway": testBinary(t, "gateway", p)})
	}
	ropts := []remote.Option{remote.WithContext(t.Context())}
	ir, err := pushImage(o, Images[1], bins, layers, ropts, []name.Option{name.Insecure})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Ref != host+"/registry-gateway/gateway:1.2.3" || len(ir.Platforms) != 2 {
		t.Errorf("result %+v", ir)
	}
	ref, err := name.ParseReference(ir.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, ropts...)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != ir.Digest || desc.MediaType != types.OCIImageIndex {
		t.Errorf("registry has %s %s, result says %s", desc.MediaType, desc.Digest, ir.Digest)
	}
	refs, err := remote.Referrers(ref.Context().Digest(ir.Digest), ropts...)
	if err != nil {
		t.Fatal(err)
	}
	rim, err := refs.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(rim.Manifests) != 1 || rim.Manifests[0].ArtifactType != SBOMMediaType || rim.Manifests[0].Digest.String() != ir.SBOMDigest {
		t.Fatalf("referrers %+v, want the SBOM %s", rim.Manifests, ir.SBOMDigest)
	}
	art, err := remote.Image(ref.Context().Digest(ir.SBOMDigest), ropts...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := art.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest.String() != ir.Digest || m.Config.MediaType != emptyMediaType || len(m.Layers) != 1 ||
		m.Layers[0].Annotations["org.opencontainers.image.title"] != "gateway.spdx.json" {
		t.Fatalf("artifact manifest %+v", m)
	}
	l, err := art.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(ir.SBOMFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pushed, file) || !bytes.Contains(file, []byte(ir.Digest[len("sha256:"):])) {
		t.Errorf("pushed SBOM (%d bytes) differs from %s (%d bytes) or names another index", len(pushed), ir.SBOMFile, len(file))
	}
}

// A registry that cannot be reached fails the push with the reference in
// the message.
func TestPushUnreachable(t *testing.T) {
	created := time.Unix(0, 0)
	o := Options{Version: "1.2.3", Registry: "127.0.0.1:1", Insecure: true, OutDir: t.TempDir(), Created: created}
	_ = o.check()
	layers := []*platformLayers{fakeLayers(t, DefaultPlatforms[0], created)}
	bins := []map[string]Binary{{"tokenserver": testBinary(t, "tokenserver", DefaultPlatforms[0])}}
	o.Platforms = DefaultPlatforms[:1]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := pushImage(o, Images[0], bins, layers, []remote.Option{remote.WithContext(ctx), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}, []name.Option{name.Insecure})
	if err == nil || !strings.Contains(err.Error(), "push 127.0.0.1:1/registry-gateway/tokenserver:1.2.3") {
		t.Errorf("error %v", err)
	}
}
