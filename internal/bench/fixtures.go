package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/httpx"
)

// The fixtures run in a process of their own (`bench fixtures`), so that
// neither the load generator nor the servers under test share a Go runtime
// with them, and so that "direct", "gateway" and "nginx" all talk to the
// very same upstream.

// Repository and tag of the image the fixtures seed into the upstream.
const (
	benchRepo = "stable/app"
	benchTag  = "latest"
	// licenceDelay is how long the fake licence API takes to answer.
	licenceDelay = 5 * time.Millisecond
	// licenceTokenPrefix marks the API tokens the fake licence API accepts.
	licenceTokenPrefix = "tok-"
)

// FixtureAddrs is what the fixtures process prints on its first line of
// output: where everything listens and what was seeded.
type FixtureAddrs struct {
	// Registry is the upstream: a stock distribution registry (open) with
	// stable/app:latest, which answers GETs of the big blob with a 307 to
	// S3, as ECR does.
	Registry       string `json:"registry"`
	S3             string `json:"s3"`
	License        string `json:"license"`
	ManifestDigest string `json:"manifest_digest"`
	ManifestType   string `json:"manifest_type"`
	ManifestSize   int    `json:"manifest_size"`
	BlobDigest     string `json:"blob_digest"`
	BlobSize       int64  `json:"blob_size"`
}

// LicenceStats are the calls the fake licence API received.
type LicenceStats struct {
	Total    int64            `json:"total"`
	PerToken map[string]int64 `json:"per_token"`
}

// Fixtures are the fixture servers of one process.
type Fixtures struct {
	Addrs FixtureAddrs
	srvs  []*http.Server
	lic   *licenceAPI
}

// StartFixtures starts the upstream registry (storage in dir), the S3 blob
// store serving a synthetic blob of blobSize bytes, and the licence API, all
// on 127.0.0.1, and seeds the registry.
func StartFixtures(ctx context.Context, dir string, blobSize int64) (*Fixtures, error) {
	f := &Fixtures{lic: &licenceAPI{perToken: map[string]*atomic.Int64{}}}
	blob := newSyntheticBlob(blobSize)
	f.Addrs.BlobSize = blobSize
	f.Addrs.BlobDigest = blob.digest

	s3, err := f.serve(blob.handler())
	if err != nil {
		return nil, err
	}
	f.Addrs.S3 = s3

	reg, err := embedreg.New(ctx, embedreg.Options{RootDir: dir})
	if err != nil {
		f.Close()
		return nil, err
	}
	front := &ecrLike{registry: reg, blobDigest: f.Addrs.BlobDigest, s3: "http://" + s3}
	if f.Addrs.Registry, err = f.serve(front); err != nil {
		f.Close()
		return nil, err
	}
	if f.Addrs.License, err = f.serve(f.lic); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.seed(ctx); err != nil {
		f.Close()
		return nil, fmt.Errorf("seed upstream: %w", err)
	}
	return f, nil
}

func (f *Fixtures) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	t := httpx.DefaultTimeouts
	t.Write = 0 // blob streams of the RSS test last long
	srv := httpx.NewServer(ln.Addr().String(), h, t, slog.New(slog.DiscardHandler))
	f.srvs = append(f.srvs, srv)
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), nil
}

// seed pushes a small two-layer image, the size of a typical manifest.
func (f *Fixtures) seed(ctx context.Context) error {
	img, err := random.Image(2048, 3)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(f.Addrs.Registry+"/"+benchRepo+":"+benchTag, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	f.Addrs.ManifestDigest, f.Addrs.ManifestSize, f.Addrs.ManifestType = d.String(), len(raw), string(mt)
	return nil
}

// LicenceStats returns the calls counted so far.
func (f *Fixtures) LicenceStats() LicenceStats { return f.lic.stats() }

// Close stops every server.
func (f *Fixtures) Close() {
	for _, s := range f.srvs {
		_ = s.Close()
	}
}

// ecrLike answers GETs of the big blob with a redirect to the S3 store, as
// ECR answers every blob GET; everything else goes to the registry.
type ecrLike struct {
	registry   http.Handler
	blobDigest string
	s3         string
}

func (e *ecrLike) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.HasPrefix(r.URL.Path, "/v2/") && strings.HasSuffix(r.URL.Path, "/blobs/"+e.blobDigest) {
		// A presigned-looking URL: the gateway must pass the query on.
		http.Redirect(w, r, e.s3+"/blobs/"+e.blobDigest+"?X-Amz-Expires=600&X-Amz-Signature=bench", http.StatusTemporaryRedirect)
		return
	}
	e.registry.ServeHTTP(w, r)
}

// syntheticBlob is a deterministic blob generated on the fly: a 1 MiB
// pseudo-random block repeated, so that a 256 MiB blob costs 1 MiB of memory
// and nothing on disk.
type syntheticBlob struct {
	size   int64
	block  []byte
	digest string
}

const syntheticBlock = 1 << 20

func newSyntheticBlob(size int64) *syntheticBlob {
	block := make([]byte, syntheticBlock)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(block); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			block[i+j] = byte(v >> (8 * j))
		}
	}
	b := &syntheticBlob{size: size, block: block}
	h := sha256.New()
	_, _ = io.Copy(h, b.reader())
	b.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return b
}

func (b *syntheticBlob) reader() *blobReader { return &blobReader{b: b} }

func (b *syntheticBlob) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blobs/"+b.digest {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+b.digest+`"`)
		http.ServeContent(w, r, "", time.Time{}, b.reader())
	})
}

// blobReader is an io.ReadSeeker over a syntheticBlob, so that
// http.ServeContent answers Range requests.
type blobReader struct {
	b   *syntheticBlob
	off int64
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.off >= r.b.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.off < r.b.size {
		i := r.off % syntheticBlock
		m := copy(p[n:], r.b.block[i:min(int64(syntheticBlock), i+r.b.size-r.off)])
		n += m
		r.off += int64(m)
	}
	return n, nil
}

func (r *blobReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.b.size
	}
	if offset < 0 {
		return 0, errors.New("negative offset")
	}
	r.off = offset
	return offset, nil
}

// licenceAPI is the vendor's licence API as the HTTP backend sees it: it
// takes `Authorization: Bearer <API token>`, answers after licenceDelay, and
// counts the calls per token. /_stats reports the counts.
type licenceAPI struct {
	total    atomic.Int64
	mu       sync.Mutex
	perToken map[string]*atomic.Int64
}

func (l *licenceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_stats" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.stats())
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	l.total.Add(1)
	l.mu.Lock()
	c := l.perToken[tok]
	if c == nil {
		c = new(atomic.Int64)
		l.perToken[tok] = c
	}
	l.mu.Unlock()
	c.Add(1)
	time.Sleep(licenceDelay)
	if !ok || !strings.HasPrefix(tok, licenceTokenPrefix) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"objects":[{"release":"stable"},{"release":"beta"}]}`)
}

func (l *licenceAPI) stats() LicenceStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LicenceStats{Total: l.total.Load(), PerToken: make(map[string]int64, len(l.perToken))}
	for k, v := range l.perToken {
		s.PerToken[k] = v.Load()
	}
	return s
}
