package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/acme/registry-gateway/internal/embedreg"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
	"github.com/acme/registry-gateway/pkg/upstream/presign"
)

// ecrFront stands for ECR in front of the embedded registry: a GET of a
// blob the registry holds is answered with a 307 to a presigned URL on the
// S3 host, signed now by the test's clock; everything else is the
// registry's own answer (a blob it does not hold: 404 BLOB_UNKNOWN).
type ecrFront struct {
	reg   http.Handler
	clock func() time.Time

	mu     sync.Mutex
	s3     string
	blobs  map[string][]byte // what the S3 host serves, by digest
	signed int
	// query builds the presigned query of a redirect (nil: SigV4 valid
	// for 600 s from now).
	query func(now time.Time, n int) url.Values
}

func sigV4Query(expires int) func(time.Time, int) url.Values {
	return func(now time.Time, n int) url.Values {
		return url.Values{
			"X-Amz-Algorithm":     {"AWS4-HMAC-SHA256"},
			"X-Amz-Credential":    {"AKIAEXAMPLE/" + now.UTC().Format("20060102") + "/us-east-1/s3/aws4_request"},
			"X-Amz-Date":          {now.UTC().Format(presign.AmzDateLayout)},
			"X-Amz-Expires":       {strconv.Itoa(expires)},
			"X-Amz-SignedHeaders": {"host"},
			"X-Amz-Signature":     {"sig" + strconv.Itoa(n)},
		}
	}
}

func (f *ecrFront) setQuery(q func(time.Time, int) url.Values) {
	f.mu.Lock()
	f.query = q
	f.mu.Unlock()
}

func (f *ecrFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if i := strings.LastIndex(r.URL.Path, "/blobs/"); r.Method == http.MethodGet && i >= 0 {
		head := r.Clone(r.Context())
		head.Method = http.MethodHead
		rec := httptest.NewRecorder()
		f.reg.ServeHTTP(rec, head)
		if rec.Code == http.StatusOK {
			f.mu.Lock()
			f.signed++
			q := f.query
			if q == nil {
				q = sigV4Query(600)
			}
			loc := f.s3 + "/" + r.URL.Path[i+len("/blobs/"):] + "?" + q(f.clock(), f.signed).Encode()
			f.mu.Unlock()
			http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
			return
		}
	}
	f.reg.ServeHTTP(w, r)
}

// s3 serves the blobs pushed, by digest, to whoever has the URL.
func (f *ecrFront) serveS3(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	b, ok := f.blobs[strings.TrimPrefix(r.URL.Path, "/")]
	f.mu.Unlock()
	if !ok || r.URL.Query().Get("X-Amz-Signature") == "" {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	_, _ = w.Write(b)
}

// redirectEnv is a gateway in front of ecrFront, with its test clock.
type redirectEnv struct {
	*env
	front *ecrFront
	clock *testutil.Clock
}

func newRedirectEnv(t *testing.T, options ...envOption) *redirectEnv {
	t.Helper()
	reg, err := embedreg.New(t.Context(), embedreg.Options{RootDir: t.TempDir(), LogLevel: "fatal"})
	if err != nil {
		t.Fatal(err)
	}
	// Now, as the tokens are signed with the real time.
	clock := testutil.NewClock(time.Now().UTC().Truncate(time.Second))
	front := &ecrFront{reg: reg, clock: clock.Now, blobs: map[string][]byte{}}
	s3 := httptest.NewServer(http.HandlerFunc(front.serveS3))
	t.Cleanup(s3.Close)
	front.s3 = s3.URL
	options = append([]envOption{func(_ *Config, o *Options) { o.Clock = clock.Now }}, options...)
	return &redirectEnv{env: newEnv(t, front, options...), front: front, clock: clock}
}

// push uploads a new random layer to the upstream repository repo and
// returns its digest.
func (e *redirectEnv) push(t *testing.T, repos ...string) string {
	t.Helper()
	layer, err := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	e.pushLayer(t, layer, repos...)
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	e.front.mu.Lock()
	e.front.blobs[d.String()] = b
	e.front.mu.Unlock()
	return d.String()
}

func (e *redirectEnv) pushLayer(t *testing.T, layer v1.Layer, repos ...string) {
	t.Helper()
	host := strings.TrimPrefix(e.upSrv.URL, "http://")
	for _, r := range repos {
		repo, err := name.NewRepository(host+"/"+r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteLayer(repo, layer, remote.WithContext(t.Context())); err != nil {
			t.Fatalf("push to %s: %v", r, err)
		}
	}
}

// blobGETs counts the upstream's blob requests of method in repo (its
// upstream name) since the env started.
func (e *redirectEnv) blobRequests(method, repo, digest string) int {
	e.upstream.mu.Lock()
	defer e.upstream.mu.Unlock()
	n := 0
	for _, r := range e.upstream.reqs {
		if r.Method == method && r.Path == "/v2/"+repo+"/blobs/"+digest {
			n++
		}
	}
	return n
}

// get GETs (or HEADs) a blob of the client's repository with tok, checks
// the status, and returns the Location.
func (e *redirectEnv) get(t *testing.T, method, repo, digest, tok string, want int) string {
	t.Helper()
	resp := e.do(method, "/v2/"+repo+"/blobs/"+digest, bearer(tok))
	body := readBody(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s@%s: %d %s, want %d", method, repo, digest, resp.StatusCode, body, want)
	}
	return resp.Header.Get("Location")
}

// eachGETUpstream GETs blob d of stable/app n times, each answered with a
// redirect that the upstream was asked for.
func (e *redirectEnv) eachGETUpstream(t *testing.T, d string, n int) {
	t.Helper()
	tok := e.token()
	for range n {
		e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect)
	}
	if got := e.blobRequests("GET", "acme/stable/app", d); got != n {
		t.Errorf("upstream saw %d blob GETs, want %d", got, n)
	}
}

func withRedirectCache(f func(*BlobRedirectCacheConfig)) envOption {
	return func(c *Config, _ *Options) { f(&c.BlobRedirectCache) }
}

// tokenFor is a valid token for pull on the client repositories repos.
func (e *redirectEnv) tokenFor(repos ...string) string {
	c := e.claims()
	c.Access = nil
	for _, r := range repos {
		c.Access = append(c.Access, auth.ResourceActions{Type: "repository", Name: r, Actions: []string{"pull"}})
	}
	return e.sign(c)
}

func TestBlobRedirectCacheReuses(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t)
	d := e.push(t, "acme/stable/app")
	tok := e.token()

	loc := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect)
	if !strings.HasPrefix(loc, e.front.s3+"/"+d+"?") || !strings.Contains(loc, "X-Amz-Signature=sig1") {
		t.Fatalf("Location %q is not the upstream's presigned URL", loc)
	}
	// Within the ttl (60 s by default; the URL is good for 600 s): the same
	// redirect, and the upstream is not asked again.
	for _, after := range []time.Duration{0, 30 * time.Second, 29 * time.Second} {
		e.clock.Advance(after)
		resp := e.do("GET", "/v2/stable/app/blobs/"+d, bearer(tok))
		readBody(t, resp)
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != loc {
			t.Fatalf("reuse: %d %q, want 307 %q", resp.StatusCode, resp.Header.Get("Location"), loc)
		}
		if got := resp.Header.Get("Docker-Distribution-Api-Version"); got != "registry/2.0" {
			t.Errorf("a reused redirect's Docker-Distribution-Api-Version %q", got)
		}
	}
	if got := e.blobRequests("GET", "acme/stable/app", d); got != 1 {
		t.Errorf("upstream saw %d blob GETs, want 1", got)
	}
	// What a client does with it: the blob, from the S3 host.
	resp, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, e.front.blobs[d]) {
		t.Errorf("following the reused redirect: %d, %d bytes", resp.StatusCode, len(got))
	}
	// HEADs are not answered from the cache (the push made HEADs too).
	heads := e.blobRequests("HEAD", "acme/stable/app", d)
	e.get(t, "HEAD", "stable/app", d, tok, http.StatusOK)
	e.get(t, "HEAD", "stable/app", d, tok, http.StatusOK)
	if got := e.blobRequests("HEAD", "acme/stable/app", d) - heads; got != 2 {
		t.Errorf("upstream saw %d blob HEADs, want 2", got)
	}
	// Past the ttl: a new redirect from the upstream.
	e.clock.Advance(2 * time.Second)
	if loc2 := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect); loc2 == loc || !strings.Contains(loc2, "X-Amz-Signature=sig2") {
		t.Errorf("after the ttl: Location %q, want a new one", loc2)
	}
	if got := e.blobRequests("GET", "acme/stable/app", d); got != 2 {
		t.Errorf("upstream saw %d blob GETs, want 2", got)
	}
	if m := e.metricLines("gateway_blob_redirect_cache"); !strings.Contains(m, `{result="hit"} 3`) || !strings.Contains(m, `{result="miss"} 2`) ||
		!strings.Contains(m, "gateway_blob_redirect_cache_entries 1") {
		t.Errorf("metrics:\n%s", m)
	}
}

func TestBlobRedirectCacheHalfValidity(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t, withRedirectCache(func(c *BlobRedirectCacheConfig) { c.TTL = time.Hour }))
	e.front.setQuery(sigV4Query(100))
	d := e.push(t, "acme/stable/app")
	tok := e.token()
	loc := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect)
	e.clock.Advance(49 * time.Second)
	if got := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect); got != loc {
		t.Errorf("within half the validity: %q, want %q", got, loc)
	}
	e.clock.Advance(2 * time.Second)
	if got := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect); got == loc {
		t.Error("past half the validity (50 s of 100 s): the old URL was handed out")
	}
	if got := e.blobRequests("GET", "acme/stable/app", d); got != 2 {
		t.Errorf("upstream saw %d blob GETs, want 2", got)
	}
}

func TestBlobRedirectCacheNotAcrossRepositories(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t)
	d := e.push(t, "acme/stable/app", "acme/stable/other")
	tok := e.tokenFor("stable/app", "stable/other")
	a := e.get(t, "GET", "stable/app", d, tok, http.StatusTemporaryRedirect)
	b := e.get(t, "GET", "stable/other", d, tok, http.StatusTemporaryRedirect)
	if a == b {
		t.Errorf("stable/other got stable/app's redirect %q", a)
	}
	for _, repo := range []string{"app", "other"} {
		e.get(t, "GET", "stable/"+repo, d, tok, http.StatusTemporaryRedirect)
		if got := e.blobRequests("GET", "acme/stable/"+repo, d); got != 1 {
			t.Errorf("%s: upstream saw %d blob GETs, want 1", repo, got)
		}
	}
}

func TestBlobRedirectCacheChecksTokenFirst(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t)
	d := e.push(t, "acme/stable/app")
	e.get(t, "GET", "stable/app", d, e.token(), http.StatusTemporaryRedirect)
	// Cached now; still refused without a token, with a token for another
	// repository, or with an expired one.
	resp := e.do("GET", "/v2/stable/app/blobs/"+d, nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
		t.Errorf("no token: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	resp = e.do("GET", "/v2/stable/app/blobs/"+d, bearer(e.tokenFor("stable/other")))
	if body := readBody(t, resp); (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) ||
		errorCode(t, body) != "DENIED" && errorCode(t, body) != "UNAUTHORIZED" || resp.Header.Get("Location") != "" {
		t.Errorf("token without the scope: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	c := e.claims()
	c.ExpiresAt.Time = e.clock.Now().Add(-time.Hour)
	resp = e.do("GET", "/v2/stable/app/blobs/"+d, bearer(e.sign(c)))
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
		t.Errorf("expired token: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	if m := e.metricLines("gateway_blob_redirect_cache_requests"); !strings.Contains(m, `{result="hit"} 0`) {
		t.Errorf("refused requests reached the cache:\n%s", m)
	}
}

func TestBlobRedirectCacheNotStored(t *testing.T) {
	t.Parallel()
	for name, q := range map[string]func(time.Time, int) url.Values{
		"no expiry": func(_ time.Time, n int) url.Values {
			return url.Values{"X-Amz-Signature": {"sig" + strconv.Itoa(n)}}
		},
		"malformed date": func(now time.Time, n int) url.Values {
			v := sigV4Query(600)(now, n)
			v.Set("X-Amz-Date", now.Format(time.RFC3339))
			return v
		},
		"expired": func(now time.Time, n int) url.Values {
			return sigV4Query(600)(now.Add(-time.Hour), n)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newRedirectEnv(t)
			e.front.setQuery(q)
			e.eachGETUpstream(t, e.push(t, "acme/stable/app"), 3)
		})
	}
	t.Run("upstream error", func(t *testing.T) {
		e := newRedirectEnv(t)
		e.push(t, "acme/stable/app")
		const unknown = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
		tok := e.token()
		for range 2 {
			resp := e.do("GET", "/v2/stable/app/blobs/"+unknown, bearer(tok))
			if body := readBody(t, resp); resp.StatusCode != http.StatusNotFound || errorCode(t, body) != "BLOB_UNKNOWN" {
				t.Fatalf("unknown blob: %d %s", resp.StatusCode, body)
			}
		}
		if got := e.blobRequests("GET", "acme/stable/app", unknown); got != 2 {
			t.Errorf("upstream saw %d blob GETs, want 2", got)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		e := newRedirectEnv(t, withRedirectCache(func(c *BlobRedirectCacheConfig) { c.Disabled = true }))
		e.eachGETUpstream(t, e.push(t, "acme/stable/app"), 2)
		if m := e.metricLines("gateway_blob_redirect_cache"); m != "" {
			t.Errorf("a disabled cache has metrics:\n%s", m)
		}
	})
}

func TestBlobRedirectCacheBounded(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t, withRedirectCache(func(c *BlobRedirectCacheConfig) { c.MaxEntries = 2 }))
	var ds []string
	for range 3 {
		ds = append(ds, e.push(t, "acme/stable/app"))
	}
	tok := e.token()
	get := func(i int) { e.get(t, "GET", "stable/app", ds[i], tok, http.StatusTemporaryRedirect) }
	get(0)
	get(1)
	get(0) // hit: 0 is now the most recently used
	get(2) // evicts 1
	get(0) // hit
	get(1) // miss
	for i, want := range []int{1, 2, 1} {
		if got := e.blobRequests("GET", "acme/stable/app", ds[i]); got != want {
			t.Errorf("blob %d: %d upstream GETs, want %d", i, got, want)
		}
	}
	if m := e.metricLines("gateway_blob_redirect_cache_entries"); !strings.Contains(m, "gateway_blob_redirect_cache_entries 2") {
		t.Errorf("metrics:\n%s", m)
	}
}

// TestBlobRedirectCacheUnusedWithProxyBlobs: the gateway follows redirects
// itself, so there is nothing to reuse (and a cached URL would skip it).
func TestBlobRedirectCacheUnusedWithProxyBlobs(t *testing.T) {
	t.Parallel()
	e := newRedirectEnv(t, func(c *Config, _ *Options) { c.Upstream.ProxyBlobs = true })
	d := e.push(t, "acme/stable/app")
	if e.gw.redirects != nil {
		t.Fatal("a redirect cache with proxy_blobs")
	}
	resp := e.do("GET", "/v2/stable/app/blobs/"+d, bearer(e.token()))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != string(e.front.blobs[d]) {
		t.Errorf("proxied blob: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestReuseFor: how long a redirect is reused, the presigned URL's expiry
// as the providers read it (presign) and the cache's ttl together.
func TestReuseFor(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sig := func(date time.Time, expires string) url.Values {
		return url.Values{"X-Amz-Date": {date.Format(presign.AmzDateLayout)}, "X-Amz-Expires": {expires}, "X-Amz-Signature": {"s"}}
	}
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	for name, tc := range map[string]struct {
		q    url.Values
		ttl  time.Duration
		want time.Duration
	}{
		"sigv4, ttl bounds":          {sig(now, "3600"), time.Minute, time.Minute},
		"sigv4, half the validity":   {sig(now, "100"), time.Hour, 50 * time.Second},
		"sigv4, signed earlier":      {sig(now.Add(-80*time.Second), "100"), time.Hour, 10 * time.Second},
		"sigv4, expired":             {sig(now.Add(-time.Hour), "600"), time.Hour, -25 * time.Minute},
		"sigv4, no expires":          {url.Values{"X-Amz-Date": {now.Format(presign.AmzDateLayout)}}, time.Hour, 0},
		"sigv4, no date":             {url.Values{"X-Amz-Expires": {"600"}}, time.Hour, 0},
		"sigv4, bad date":            {url.Values{"X-Amz-Date": {"20261201"}, "X-Amz-Expires": {"600"}}, time.Hour, 0},
		"sigv4, expires not number":  {sig(now, "10m"), time.Hour, 0},
		"sigv4, expires 0":           {sig(now, "0"), time.Hour, 0},
		"sigv4, beyond 7 days":       {sig(now, "604801"), time.Hour, 0},
		"sigv4, repeated":            {url.Values{"X-Amz-Date": {now.Format(presign.AmzDateLayout), now.Format(presign.AmzDateLayout)}, "X-Amz-Expires": {"600"}}, time.Hour, 0},
		"sigv2 or cloudfront":        {url.Values{"Expires": {unix(now.Add(100 * time.Second))}, "Signature": {"s"}}, time.Hour, 50 * time.Second},
		"expires, bad":               {url.Values{"Expires": {"tomorrow"}}, time.Hour, 0},
		"expires, repeated":          {url.Values{"Expires": {unix(now.Add(time.Hour)), unix(now.Add(time.Hour))}}, time.Hour, 0},
		"both: the earliest counts":  {func() url.Values { v := sig(now, "3600"); v.Set("Expires", unix(now.Add(20*time.Second))); return v }(), time.Hour, 10 * time.Second},
		"none":                       {url.Values{"X-Amz-Signature": {"s"}}, time.Hour, 0},
		"cloudfront policy (opaque)": {url.Values{"Policy": {"e30"}, "Signature": {"s"}, "Key-Pair-Id": {"K"}}, time.Hour, 0},
	} {
		var got time.Duration
		if expires, ok := presign.Expiry(tc.q); ok {
			got = reuseFor(expires, now, tc.ttl)
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
}
