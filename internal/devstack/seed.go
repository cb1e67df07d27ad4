package devstack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/acme/registry-gateway/pkg/auth"
)

// DemoTags are the tags every demo repository gets.
var DemoTags = []string{"1.0", "latest"}

// DemoFile is the one file in the demo image's layer.
const DemoFile = "hello.txt"

// DemoImage is the demo image of a channel: an index for linux/amd64 and
// linux/arm64 (so that `docker pull` on either finds its platform) of an
// image whose single layer holds hello.txt. It holds no executable: it is
// for pulling, not running. Built the same way every time, so that pushing
// it again changes nothing.
func DemoImage(channel string) (v1.ImageIndex, error) {
	text := fmt.Sprintf("Hello from the %s channel of the registry gateway demo.\n", channel)
	base, err := crane.Image(map[string][]byte{DemoFile: []byte(text)})
	if err != nil {
		return nil, err
	}
	// A Docker manifest list of Docker manifests, like `docker buildx`
	// pushes to ECR: what every client has understood longest.
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, arch := range []string{"amd64", "arm64"} {
		cf, err := base.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		cf.Config.Labels = map[string]string{
			"org.opencontainers.image.title":       "hello",
			"org.opencontainers.image.description": "registry gateway demo image, channel " + channel,
		}
		img, err := mutate.ConfigFile(base, cf)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
}

// Seed pushes the demo image to stable/hello and beta/hello (tags 1.0 and
// latest) of the registry at host over plain http with Basic credentials,
// and returns the digest of each repo:tag pushed.
func Seed(ctx context.Context, host, username, password string) (map[string]string, error) {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(&authn.Basic{Username: username, Password: password}),
		remote.WithTransport(&http.Transport{Proxy: nil, ResponseHeaderTimeout: 30 * time.Second}),
	}
	out := map[string]string{}
	for _, repo := range []string{LicensedRepo, UnlicensedRepo} {
		idx, err := DemoImage(auth.Channel(repo))
		if err != nil {
			return nil, err
		}
		digest, err := idx.Digest()
		if err != nil {
			return nil, err
		}
		for _, tag := range DemoTags {
			ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
			if err != nil {
				return nil, err
			}
			if err := remote.WriteIndex(ref, idx, opts...); err != nil {
				return nil, fmt.Errorf("push %s: %w", ref, err)
			}
			out[repo+":"+tag] = digest.String()
		}
	}
	return out, nil
}
