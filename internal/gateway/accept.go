package gateway

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/acme/registry-gateway/internal/httpx"
)

// manifestMediaTypes are the manifest media types the gateway passes on in
// a manifest request's Accept, sorted: the bit i of an acceptSet stands for
// manifestMediaTypes[i].
var manifestMediaTypes = [...]string{
	"*/*",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.artifact.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
}

// acceptSet is a manifest request's Accept reduced to the manifest media
// types it names: what a registry picks the answer's media type by. It is
// part of the manifest cache key, so that no client can grow or flush the
// cache by varying the rest of the header.
type acceptSet uint8

// Bounds of a request's Accept headers, generous for every real client
// (docker and containerd send 5 to 8 media types).
const (
	maxAcceptBytes = 4 << 10
	maxAcceptParts = 32
)

// errAcceptTooLarge: UNSUPPORTED is the spec's code for a request with an
// invalid set of parameters.
var errAcceptTooLarge = httpx.Errorf(http.StatusBadRequest, httpx.CodeUnsupported,
	"Accept header too large (at most 32 media types, 4 KiB)")

// checkAccept refuses Accept headers beyond the bounds.
func checkAccept(values []string) error {
	n, parts := 0, 0
	for _, v := range values {
		n += len(v)
		parts += strings.Count(v, ",") + 1
	}
	if n > maxAcceptBytes || parts > maxAcceptParts {
		return errAcceptTooLarge
	}
	return nil
}

// parseAccept reduces Accept values to the manifest media types they name;
// parameters (q=…), case, order, repeats and other types do not count.
func parseAccept(values []string) acceptSet {
	var s acceptSet
	for _, v := range values {
		for v != "" {
			part := v
			if i := strings.IndexByte(v, ','); i >= 0 {
				part, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			if i := strings.IndexByte(part, ';'); i >= 0 {
				part = part[:i]
			}
			part = strings.TrimSpace(part)
			for i, known := range manifestMediaTypes {
				if len(part) == len(known) && strings.EqualFold(part, known) {
					s |= 1 << i
					break
				}
			}
		}
	}
	return s
}

// acceptHeaders caches the header of each set, built on first use: manifest
// requests are the hot path, and there are only 256 sets.
var acceptHeaders [1 << len(manifestMediaTypes)]atomic.Pointer[[]string]

// header is s as one Accept value, in the order of manifestMediaTypes; nil
// for the empty set. The slice is shared: callers must not change it (its
// len equals its cap, so an append copies).
func (s acceptSet) header() []string {
	if s == 0 {
		return nil
	}
	if h := acceptHeaders[s].Load(); h != nil {
		return *h
	}
	var b strings.Builder
	for i, mt := range manifestMediaTypes {
		if s&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(mt)
		}
	}
	h := []string{b.String()}
	acceptHeaders[s].Store(&h)
	return h
}
