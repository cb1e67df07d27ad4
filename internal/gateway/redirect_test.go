package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// blobHost stands for S3: it serves one blob with Range support and
// records the Authorization headers it was sent.
type blobHost struct {
	blob    []byte
	mu      sync.Mutex
	auth    []string
	hits    int
	methods []string
}

func (b *blobHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits++
	b.methods = append(b.methods, r.Method)
	b.auth = append(b.auth, r.Header.Values("Authorization")...)
	b.mu.Unlock()
	// Like a presigned S3 URL: signed for GET only.
	if r.URL.Query().Get("X-Amz-Signature") != "abc" || r.Method != http.MethodGet {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// What S3 sends and clients must not see.
	w.Header().Set("Server", "AmazonS3")
	w.Header().Set("X-Amz-Id-2", "s3-host-id")
	w.Header().Set("X-Amz-Request-Id", "s3-request")
	w.Header().Set("X-Amz-Server-Side-Encryption", "AES256")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.blob))
}

func newBlobHost(t *testing.T) (*blobHost, *httptest.Server) {
	b := &blobHost{blob: bytes.Repeat([]byte("layer-bytes-"), 100_000)}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv
}

func TestBlobRedirectReachesClientUntouched(t *testing.T) {
	t.Parallel()
	host, hostSrv := newBlobHost(t)
	reg := newFakeRegistry()
	reg.blobRedirect = hostSrv.URL
	e := newEnv(t, reg)
	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e.token()))
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Location"), hostSrv.URL+"/blob?X-Amz-Signature=abc"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if host.hits != 0 {
		t.Errorf("the gateway contacted the redirect host")
	}
	// A client following it gets the blob from the other host directly.
	resp2, err := http.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if got, _ := io.ReadAll(resp2.Body); !bytes.Equal(got, host.blob) {
		t.Errorf("blob from redirect host differs")
	}
}

func TestProxyBlobsFollowsRedirect(t *testing.T) {
	t.Parallel()
	host, hostSrv := newBlobHost(t)
	reg := newFakeRegistry()
	reg.blobRedirect = hostSrv.URL
	e := newEnv(t, reg, func(c *Config, _ *Options) { c.Upstream.ProxyBlobs = true })
	tok := e.token()

	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(tok))
	for _, k := range []string{"Server", "X-Amz-Id-2", "X-Amz-Request-Id", "X-Amz-Server-Side-Encryption"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("the storage's %s: %s reached the client", k, v)
		}
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, host.blob) {
		t.Fatalf("status %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
	if resp.ContentLength != int64(len(host.blob)) {
		t.Errorf("Content-Length %d", resp.ContentLength)
	}
	if resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Errorf("Docker-Content-Digest %q", resp.Header.Get("Docker-Content-Digest"))
	}

	h := bearer(tok)
	h.Set("Range", "bytes=12-23")
	resp = e.do("GET", "/v2/stable/app/blobs/"+dgst, h)
	if body := readBody(t, resp); resp.StatusCode != http.StatusPartialContent || body != "layer-bytes-" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("Content-Range"), "bytes 12-23/"+itoa(len(host.blob)); got != want {
		t.Errorf("Content-Range %q, want %q", got, want)
	}

	resp = e.do("HEAD", "/v2/stable/app/blobs/"+dgst, bearer(tok))
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(host.blob)) || resp.Header.Get("Docker-Content-Digest") != dgst {
		t.Errorf("HEAD: %d, length %d, digest %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
	if resp.Header.Get("Content-Range") != "" {
		t.Errorf("HEAD answer has Content-Range %q", resp.Header.Get("Content-Range"))
	}

	host.mu.Lock()
	defer host.mu.Unlock()
	if host.hits != 3 {
		t.Errorf("redirect host hit %d times", host.hits)
	}
	if len(host.auth) != 0 {
		t.Errorf("the redirect host was sent Authorization %q", host.auth)
	}
	// The upstream got its credential, the client's token went nowhere.
	if up := e.upstream.last(); up.Header.Get("Authorization") != basic(testUser, testPassword) {
		t.Errorf("upstream Authorization %q", up.Header.Get("Authorization"))
	}
}

func TestProxyBlobsRedirectFailures(t *testing.T) {
	t.Parallel()
	loop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path, http.StatusFound)
	})
	loopSrv := httptest.NewServer(loop)
	t.Cleanup(loopSrv.Close)
	reg := newFakeRegistry()
	reg.blobRedirect = loopSrv.URL
	e := newEnv(t, reg, func(c *Config, _ *Options) { c.Upstream.ProxyBlobs = true })
	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e.token()))
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("redirect loop: %d %s", resp.StatusCode, body)
	}

	reg2 := newFakeRegistry()
	reg2.blobRedirect = "ftp://example.com"
	e2 := newEnv(t, reg2, func(c *Config, _ *Options) { c.Upstream.ProxyBlobs = true })
	if resp := e2.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e2.token())); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("ftp redirect: %d", resp.StatusCode)
	}

	// Manifests are never followed: only blob routes, whose kind the
	// follower reads from the request's route (a name may hold "blobs").
	if r, _ := ParseRoute("/v2/acme/blobs/x/manifests/latest"); r.Kind != RouteManifest {
		t.Errorf("kind %v", r.Kind)
	}
	if r, _ := ParseRoute("/v2/acme/x/blobs/" + dgst); r.Kind != RouteBlob {
		t.Errorf("kind %v", r.Kind)
	}
}
