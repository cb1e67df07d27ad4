package release

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// emptyMediaType is OCI 1.1's empty config of an artifact: the two bytes "{}".
const emptyMediaType types.MediaType = "application/vnd.oci.empty.v1+json"

// rawManifest is a manifest built by hand, for remote.Put.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// artifactManifest is an OCI 1.1 artifact manifest: an empty config, one
// layer holding the file, and the subject it refers to. go-containerregistry
// builds image manifests; an artifact's is written here.
func artifactManifest(artifactType types.MediaType, content []byte, title string, subject v1.Descriptor, created time.Time) ([]byte, v1.Layer, v1.Layer, error) {
	cfg := static.NewLayer([]byte("{}"), emptyMediaType)
	file := static.NewLayer(content, artifactType)
	cfgDigest, err := cfg.Digest()
	if err != nil {
		return nil, nil, nil, err
	}
	fileDigest, err := file.Digest()
	if err != nil {
		return nil, nil, nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  string(artifactType),
		Config:        v1.Descriptor{MediaType: emptyMediaType, Digest: cfgDigest, Size: 2, Data: []byte("{}")},
		Layers: []v1.Descriptor{{
			MediaType:   artifactType,
			Digest:      fileDigest,
			Size:        int64(len(content)),
			Annotations: map[string]string{"org.opencontainers.image.title": title},
		}},
		Subject:     &subject,
		Annotations: map[string]string{"org.opencontainers.image.created": created.UTC().Format(time.RFC3339)},
	}
	raw, err := json.Marshal(m)
	return raw, cfg, file, err
}

// pushReferrer pushes content as an artifact that refers to subject in
// repo, and returns the artifact manifest's digest. A registry with the
// referrers API (OCI distribution 1.1) lists it there; for one without
// (distribution v3 among them) go-containerregistry maintains the
// `sha256-<subject hex>` tag index of the referrers tag schema, which
// `crane`/`oras discover`/`cosign` read as well.
func pushReferrer(repo name.Repository, artifactType types.MediaType, content []byte, title string, subject v1.Descriptor, created time.Time, opts []remote.Option) (v1.Hash, error) {
	raw, cfg, file, err := artifactManifest(artifactType, content, title, subject, created)
	if err != nil {
		return v1.Hash{}, err
	}
	for _, l := range []v1.Layer{cfg, file} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", title, err)
		}
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Put(repo.Digest(h.String()), rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", title, err)
	}
	return h, nil
}
