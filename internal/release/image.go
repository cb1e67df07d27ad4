package release

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one product image: what the Dockerfile's target of the same
// name builds, and what the chart's `<name>.repository` names.
type Image struct {
	// Name is the Dockerfile target and the binary the image runs.
	Name string
	// Repository is the image's path below the registry; the chart's
	// default `<name>.repository` (a test keeps them in step).
	Repository string
	// Binaries are copied to / in this order; every image carries
	// tokenserver, whose `healthcheck` command is the health check (there
	// is no shell or curl in the images).
	Binaries []string
	// Entrypoint and Cmd as in the Dockerfile.
	Entrypoint, Cmd []string
	// Port is the one port the image exposes (its `listen` default).
	Port int
}

// Images are the images a release pushes: the two services. The
// Dockerfile's registry and seed images are the compose demo's, not the
// product's.
var Images = []Image{
	{
		Name:       "tokenserver",
		Repository: "registry-gateway/tokenserver",
		Binaries:   []string{"tokenserver"},
		Entrypoint: []string{"/tokenserver"},
		Cmd:        []string{"serve", "-config", "/etc/registry-gateway/tokenserver.yaml"},
		Port:       5001,
	},
	{
		Name:       "gateway",
		Repository: "registry-gateway/gateway",
		Binaries:   []string{"tokenserver", "gateway"},
		Entrypoint: []string{"/gateway"},
		Cmd:        []string{"-config", "/etc/registry-gateway/gateway.yaml"},
		Port:       5000,
	},
}

// Binaries is every binary some image needs: what the build compiles.
func Binaries() []string {
	var out []string
	seen := map[string]bool{}
	for _, img := range Images {
		for _, b := range img.Binaries {
			if !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	return out
}

// User is the images' non-root user and group, distroless's "nonroot"
// (the chart's runAsUser and fsGroup).
const User = "65532:65532"

// CABundlePath is where Go's crypto/x509 looks first on Linux.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// passwd and group name the users the images know, so that a process (or a
// `ps` in a debug container) finds a name for 65532; the files are
// distroless's.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// file is one regular file of a layer.
type file struct {
	path string // absolute, inside the image
	mode int64
	data []byte
}

// layer makes a reproducible OCI layer (gzip) of files: owned by root,
// every parent directory listed, every time set to mtime, so that the same
// input gives the same digest on any machine.
func layer(files []file, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.path); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755,
				ModTime: mtime, Format: tar.FormatPAX,
			}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode,
			Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX,
		}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// readCABundle reads the CA bundle the images carry and checks that it
// holds certificates: an image without them could not reach ECR.
func readCABundle(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", file)
	}
	return b, nil
}

// platformLayers are the layers of one platform, shared by the images that
// use them (so that a registry stores the base and tokenserver once).
type platformLayers struct {
	base     v1.Layer
	binaries map[string]v1.Layer
}

func newPlatformLayers(caBundle []byte, binDir string, names []string, mtime time.Time) (*platformLayers, error) {
	base, err := layer([]file{
		{path: "/etc/group", mode: 0o644, data: []byte(group)},
		{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: CABundlePath, mode: 0o644, data: caBundle},
	}, mtime)
	if err != nil {
		return nil, err
	}
	pl := &platformLayers{base: base, binaries: map[string]v1.Layer{}}
	for _, name := range names {
		b, err := os.ReadFile(binDir + "/" + name)
		if err != nil {
			return nil, err
		}
		l, err := layer([]file{{path: "/" + name, mode: 0o755, data: b}}, mtime)
		if err != nil {
			return nil, err
		}
		pl.binaries[name] = l
	}
	return pl, nil
}

// buildImage assembles one platform's image of spec: the base layer, one
// layer a binary, and the Dockerfile's configuration (non-root user,
// entrypoint, port, health check).
func buildImage(spec Image, p v1.Platform, pl *platformLayers, created time.Time, labels map[string]string) (v1.Image, error) {
	port := fmt.Sprintf("%d/tcp", spec.Port)
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			User:         User,
			Entrypoint:   spec.Entrypoint,
			Cmd:          spec.Cmd,
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CABundlePath},
			WorkingDir:   "/",
			ExposedPorts: map[string]struct{}{port: {}},
			Labels:       labels,
			Healthcheck: &v1.HealthConfig{
				Test:     []string{"CMD", "/tokenserver", "healthcheck", fmt.Sprintf("http://127.0.0.1:%d/healthz", spec.Port)},
				Interval: 10 * time.Second, Timeout: 5 * time.Second, StartPeriod: 5 * time.Second, Retries: 3,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{{
		Layer:   pl.base,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "release: /etc/passwd, /etc/group, " + CABundlePath},
	}}
	for _, name := range spec.Binaries {
		l, ok := pl.binaries[name]
		if !ok {
			return nil, fmt.Errorf("image %s: no binary %s", spec.Name, name)
		}
		adds = append(adds, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "release: /" + name},
		})
	}
	return mutate.Append(img, adds...)
}

// buildIndex is spec's multi-platform image index.
func buildIndex(spec Image, platforms []v1.Platform, layers []*platformLayers, created time.Time, labels, annotations map[string]string) (v1.ImageIndex, error) {
	if len(platforms) == 0 || len(platforms) != len(layers) {
		return nil, errors.New("no platform to build")
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for i, p := range platforms {
		img, err := buildImage(spec, p, layers[i], created, labels)
		if err != nil {
			return nil, err
		}
		p := p
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}
