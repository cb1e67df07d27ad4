// Package release builds and publishes a release without a Docker daemon:
// the services cross-compiled for each platform, one multi-platform OCI
// image index per service (go-containerregistry: the binaries as layers on
// nothing but a CA bundle and /etc/passwd, non-root, read-only-friendly),
// an SPDX SBOM per image pushed as an OCI referrer of its index, and the
// Helm chart packaged and pushed as an OCI artifact (helm push). It prints
// the digests and writes everything it made into an output folder.
//
// It is the vendor's build tool behind `make release` (cmd/release): no
// service imports it.
package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultPlatforms are the platforms of a release.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// Options of a release. Version and Registry are required.
type Options struct {
	// Version is the images' tag and the chart's appVersion (so the chart's
	// default image tag is this release's); the chart version is Version
	// without a leading "v". SemVer: MAJOR.MINOR.PATCH[-PRERELEASE], with
	// an optional "v" ("+build" metadata is not a valid image tag).
	Version string
	// Registry is where everything is pushed: HOST[:PORT][/PATH]. The
	// images go to REGISTRY/registry-gateway/{gateway,tokenserver}, the
	// chart to oci://REGISTRY/charts/registry-gateway.
	Registry string
	// Insecure talks plain HTTP to the registry (a local registry).
	Insecure bool
	// Platforms to build; default DefaultPlatforms.
	Platforms []v1.Platform
	// SourceDir is the module's root: where go build runs and
	// charts/registry-gateway is.
	SourceDir string
	// LDFlags are go build's -ldflags (the Makefile's LDFLAGS: version and
	// commit of --version).
	LDFlags string
	// Commit is the source revision, for the images' labels; optional.
	Commit string
	// OutDir receives the binaries (OS_ARCH/), the SBOMs, the chart's .tgz
	// and release.json.
	OutDir string
	// CABundle is the host file the images carry as CABundlePath.
	CABundle string
	// Helm is the helm CLI (v4; scripts/helm.sh prints the pinned one).
	Helm string
	// Created is the images' creation time and the build's file times:
	// with the same sources it gives the same digests (SOURCE_DATE_EPOCH).
	Created time.Time
	// Keychain gives the registry credentials; default
	// authn.DefaultKeychain (docker's config.json and its helpers).
	Keychain authn.Keychain
	// RegistryConfig is the docker config.json helm reads its logins from;
	// default $DOCKER_CONFIG/config.json or ~/.docker/config.json when it
	// exists.
	RegistryConfig string
	// Go is the go command; default "go".
	Go string
	// Log receives progress; default discards.
	Log *slog.Logger
}

// Result is what a release pushed, as printed and written to release.json.
type Result struct {
	Version      string        `json:"version"`
	Images       []ImageResult `json:"images"`
	Chart        ChartResult   `json:"chart"`
	ChartVersion string        `json:"chart_version"`
}

// ImageResult is one pushed image index.
type ImageResult struct {
	Name string `json:"name"`
	// Ref is REGISTRY/REPOSITORY:VERSION.
	Ref       string            `json:"ref"`
	Digest    string            `json:"digest"`
	Platforms map[string]string `json:"platforms"` // "linux/amd64" -> manifest digest
	// SBOM is the SBOM file under OutDir and the digest of the referrer
	// artifact that carries it.
	SBOMFile   string `json:"sbom_file"`
	SBOMDigest string `json:"sbom_digest"`
}

// ChartResult is the pushed chart.
type ChartResult struct {
	Ref    string `json:"ref"` // oci://REGISTRY/charts/registry-gateway:CHART_VERSION
	Digest string `json:"digest"`
	File   string `json:"file"`
}

// semver is SemVer 2.0.0 without build metadata, with an optional "v".
var semver = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-((0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)

// check fills defaults and returns every problem of the options at once,
// before anything is built.
func (o *Options) check() error {
	var errs []error
	switch {
	case o.Version == "":
		errs = append(errs, errors.New("VERSION is required, e.g. 1.4.0"))
	case !semver.MatchString(o.Version) || len(o.Version) > 128:
		errs = append(errs, fmt.Errorf("VERSION %q is not a release version: want MAJOR.MINOR.PATCH[-PRERELEASE] (SemVer, optional v; it is the image tag and the chart version)", o.Version))
	}
	if o.Registry == "" {
		errs = append(errs, errors.New("REGISTRY is required, e.g. registry.example.com/acme"))
	} else if strings.Contains(o.Registry, "://") {
		errs = append(errs, fmt.Errorf("REGISTRY %q: give HOST[:PORT][/PATH], without a scheme (INSECURE=1 for plain HTTP)", o.Registry))
	} else if _, err := name.NewRepository(strings.TrimSuffix(o.Registry, "/")+"/"+Images[0].Repository, name.StrictValidation); err != nil {
		errs = append(errs, fmt.Errorf("REGISTRY %q: %v", o.Registry, err))
	}
	o.Registry = strings.TrimSuffix(o.Registry, "/")
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	if o.SourceDir == "" {
		o.SourceDir = "."
	}
	if o.OutDir == "" {
		errs = append(errs, errors.New("no output folder"))
	}
	if o.CABundle == "" {
		o.CABundle = CABundlePath
	}
	if o.Helm == "" {
		errs = append(errs, errors.New("no helm CLI: `make helm` (scripts/helm.sh) builds the pinned one"))
	} else if _, err := exec.LookPath(o.Helm); err != nil {
		errs = append(errs, fmt.Errorf("helm CLI %s: %v (`make helm` builds the pinned one)", o.Helm, err))
	}
	if _, err := os.Stat(filepath.Join(o.SourceDir, "charts", ChartName, "Chart.yaml")); err != nil {
		errs = append(errs, fmt.Errorf("the chart: %v (SourceDir must be the repository's root)", err))
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.RegistryConfig == "" {
		o.RegistryConfig = dockerConfigFile()
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0) // reproducible, as ko does without SOURCE_DATE_EPOCH
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return errors.Join(errs...)
}

// dockerConfigFile is docker's config.json, as authn.DefaultKeychain finds
// it, when it exists.
func dockerConfigFile() string {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".docker")
	}
	f := filepath.Join(dir, "config.json")
	if _, err := os.Stat(f); err != nil {
		return ""
	}
	return f
}

// Run makes the release: build, images, SBOMs, chart; it writes the
// digests to stdout as it pushes and returns them.
func Run(ctx context.Context, o Options, stdout io.Writer) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	caBundle, err := readCABundle(o.CABundle)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Version: o.Version, ChartVersion: strings.TrimPrefix(o.Version, "v")}

	// Every binary of every platform first: a compile error stops the
	// release before anything is pushed.
	names := Binaries()
	binaries := make([]map[string]Binary, len(o.Platforms))
	layers := make([]*platformLayers, len(o.Platforms))
	for i, p := range o.Platforms {
		dir := filepath.Join(o.OutDir, p.OS+"_"+p.Architecture+variantSuffix(p))
		if err := build(ctx, o, p, dir, names); err != nil {
			return nil, err
		}
		binaries[i] = map[string]Binary{}
		for _, n := range names {
			b, err := readBinary(n, p, filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			binaries[i][n] = b
		}
		if layers[i], err = newPlatformLayers(caBundle, dir, names, o.Created); err != nil {
			return nil, err
		}
	}

	remoteOpts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.Keychain),
		remote.WithUserAgent("registry-gateway-release/" + o.Version),
	}
	nameOpts := []name.Option{name.StrictValidation}
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	for _, spec := range Images {
		ir, err := pushImage(o, spec, binaries, layers, remoteOpts, nameOpts)
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, ir)
		fmt.Fprintf(stdout, "%s@%s\n", ir.Ref, ir.Digest)
		for _, p := range sortedKeys(ir.Platforms) {
			fmt.Fprintf(stdout, "  %-12s %s\n", p, ir.Platforms[p])
		}
		fmt.Fprintf(stdout, "  %-12s %s (%s, referrer of the index; %s)\n", "sbom", ir.SBOMDigest, SBOMMediaType, ir.SBOMFile)
	}

	work, err := os.MkdirTemp("", "release-chart")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	o.Log.Info("packaging the chart", "version", res.ChartVersion)
	tgz, err := packageChart(ctx, o.Helm, filepath.Join(o.SourceDir, "charts", ChartName), work, o.OutDir, res.ChartVersion, o.Version, o.Registry)
	if err != nil {
		return nil, err
	}
	o.Log.Info("pushing the chart", "file", tgz)
	if err := pushChart(ctx, o.Helm, tgz, o.Registry, o.RegistryConfig, o.Insecure); err != nil {
		return nil, err
	}
	// The digest is asked of the registry, not parsed from helm's output.
	chartRef, err := name.NewTag(o.Registry+"/"+ChartRepository+"/"+ChartName+":"+res.ChartVersion, nameOpts...)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Head(chartRef, remoteOpts...)
	if err != nil {
		return nil, fmt.Errorf("the pushed chart %s: %w", chartRef, err)
	}
	res.Chart = ChartResult{Ref: "oci://" + chartRef.String(), Digest: desc.Digest.String(), File: tgz}
	fmt.Fprintf(stdout, "%s@%s\n", res.Chart.Ref, res.Chart.Digest)

	summary, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.OutDir, "release.json"), append(summary, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// pushImage builds spec's index over every platform, pushes it, then its
// SBOM as a referrer of the index.
func pushImage(o Options, spec Image, binaries []map[string]Binary, layers []*platformLayers, remoteOpts []remote.Option, nameOpts []name.Option) (ImageResult, error) {
	repoName := o.Registry + "/" + spec.Repository
	tag, err := name.NewTag(repoName+":"+o.Version, nameOpts...)
	if err != nil {
		return ImageResult{}, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":   spec.Name,
		"org.opencontainers.image.version": o.Version,
		"org.opencontainers.image.source":  "https://github.com/acme/registry-gateway",
		"org.opencontainers.image.created": o.Created.UTC().Format(time.RFC3339),
	}
	if o.Commit != "" {
		labels["org.opencontainers.image.revision"] = o.Commit
	}
	idx, err := buildIndex(spec, o.Platforms, layers, o.Created, labels, labels)
	if err != nil {
		return ImageResult{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	o.Log.Info("pushing", "image", tag.String())
	if err := remote.WriteIndex(tag, idx, remoteOpts...); err != nil {
		return ImageResult{}, fmt.Errorf("push %s: %w", tag, err)
	}
	desc, err := partial.Descriptor(idx)
	if err != nil {
		return ImageResult{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return ImageResult{}, err
	}
	ir := ImageResult{Name: spec.Name, Ref: tag.String(), Digest: desc.Digest.String(), Platforms: map[string]string{}}
	for _, m := range im.Manifests {
		ir.Platforms[platformString(*m.Platform)] = m.Digest.String()
	}

	var bins []Binary
	for i := range o.Platforms {
		for _, n := range spec.Binaries {
			bins = append(bins, binaries[i][n])
		}
	}
	doc, err := SBOM(SBOMInput{Image: spec, Version: o.Version, Repo: tag.Context().String(), Digest: desc.Digest, Binaries: bins, Created: o.Created})
	if err != nil {
		return ImageResult{}, err
	}
	sbom, err := encodeSBOM(doc)
	if err != nil {
		return ImageResult{}, err
	}
	title := spec.Name + ".spdx.json"
	ir.SBOMFile = filepath.Join(o.OutDir, title)
	if err := os.WriteFile(ir.SBOMFile, sbom, 0o644); err != nil {
		return ImageResult{}, err
	}
	subject := v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	h, err := pushReferrer(tag.Context(), SBOMMediaType, sbom, title, subject, o.Created, remoteOpts)
	if err != nil {
		return ImageResult{}, err
	}
	ir.SBOMDigest = h.String()
	return ir, nil
}

// build cross-compiles the binaries for p into dir as `make build` does:
// static (CGO_ENABLED=0), -trimpath, the Makefile's -ldflags.
func build(ctx context.Context, o Options, p v1.Platform, dir string, names []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-ldflags", o.LDFlags, "-o", dir + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	cmd := exec.CommandContext(ctx, o.Go, args...)
	cmd.Dir = o.SourceDir
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOOS=") || strings.HasPrefix(kv, "GOARCH=") || strings.HasPrefix(kv, "CGO_ENABLED=") || strings.HasPrefix(kv, "GOARM=")
	}), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	o.Log.Info("building", "platform", platformString(p), "binaries", names, "dir", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", platformString(p), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func variantSuffix(p v1.Platform) string {
	if p.Variant == "" {
		return ""
	}
	return "_" + p.Variant
}
