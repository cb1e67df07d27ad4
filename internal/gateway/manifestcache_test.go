package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

// fakeManifest is what manifestRegistry answers for one reference.
type fakeManifest struct {
	body []byte
	// digest is the Docker-Content-Digest sent; default the body's.
	digest string
}

// manifestRegistry is an upstream for acme/stable/app whose manifests hash
// to their digests (unlike fakeRegistry's), so that the cache stores them.
// It echoes the Accept it saw as the Content-Type, like a registry that
// negotiates.
type manifestRegistry struct {
	mu   sync.Mutex
	refs map[string]fakeManifest
	// hold, when set, delays every answer until it is closed.
	hold chan struct{}
	// arrived receives a value as each request arrives, when set.
	arrived chan struct{}
}

func newManifestRegistry() *manifestRegistry {
	return &manifestRegistry{refs: map[string]fakeManifest{}}
}

// put stores body under the tag (if any) and under its digest, which it
// returns.
func (m *manifestRegistry) put(tag string, body []byte) string {
	d := digest.FromBytes(body).String()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs[d] = fakeManifest{body: body}
	if tag != "" {
		m.refs[tag] = fakeManifest{body: body}
	}
	return d
}

func (m *manifestRegistry) set(ref string, fm fakeManifest) {
	m.mu.Lock()
	m.refs[ref] = fm
	m.mu.Unlock()
}

func (m *manifestRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.arrived != nil {
		m.arrived <- struct{}{}
	}
	if m.hold != nil {
		<-m.hold
	}
	m.mu.Lock()
	fm, ok := m.refs[path.Base(r.URL.Path)]
	m.mu.Unlock()
	dir := path.Dir(r.URL.Path)
	if !ok || dir != "/v2/acme/stable/app/manifests" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
		return
	}
	d := fm.digest
	if d == "" {
		d = digest.FromBytes(fm.body).String()
	}
	ct := "application/vnd.oci.image.manifest.v1+json"
	if a := r.Header.Values("Accept"); len(a) > 0 {
		ct, _, _ = strings.Cut(a[0], ",")
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Content-Length", itoa(len(fm.body)))
	w.Header().Set("X-Upstream", "1")
	if r.Method == http.MethodGet {
		_, _ = w.Write(fm.body)
	}
}

// manifestBody is a distinct manifest of n bytes or so.
func manifestBody(tag string, n int) []byte {
	b := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"tag":%q,"pad":"`, tag)
	b = append(b, bytes.Repeat([]byte("x"), max(n-len(b)-3, 0))...)
	return append(b, `"}}`...)
}

// upstreamHits counts the upstream requests for path (after the prefix).
func (e *env) upstreamHits(method, p string) int {
	e.upstream.mu.Lock()
	defer e.upstream.mu.Unlock()
	n := 0
	for _, r := range e.upstream.reqs {
		if r.Method == method && r.Path == "/v2/acme/stable/app/manifests/"+p {
			n++
		}
	}
	return n
}

// cacheMetrics are the gateway_manifest_cache lines of /metrics.
func (e *env) cacheMetrics() string { return e.metricLines("gateway_manifest_cache") }

// metricLines are the lines of /metrics that start with prefix.
func (e *env) metricLines(prefix string) string {
	e.t.Helper()
	var b strings.Builder
	for line := range strings.Lines(e.scrape()) {
		if strings.HasPrefix(line, prefix) {
			b.WriteString(line)
		}
	}
	return b.String()
}

func withCache(f func(*ManifestCacheConfig)) envOption {
	return func(c *Config, _ *Options) { f(&c.ManifestCache) }
}

// getManifest GETs (or HEADs) ref with tok and the Accept values, and
// checks the status.
func (e *env) getManifest(t *testing.T, method, ref, tok string, want int, accept ...string) (*http.Response, string) {
	t.Helper()
	h := bearer(tok)
	for _, a := range accept {
		h.Add("Accept", a)
	}
	resp := e.do(method, "/v2/stable/app/manifests/"+ref, h)
	body := readBody(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, ref, resp.StatusCode, body, want)
	}
	return resp, body
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func TestManifestCacheHitByDigest(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	body := manifestBody("v1", 700)
	d := reg.put("v1", body)
	e := newEnv(t, reg)
	tok := e.token()
	const n = 5
	var first http.Header
	for i := range n {
		resp, got := e.getManifest(t, "GET", d, tok, 200, ociManifest)
		if got != string(body) {
			t.Fatalf("GET %d: body differs", i)
		}
		if i == 0 {
			first = resp.Header
			continue
		}
		for _, k := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Docker-Distribution-Api-Version"} {
			if got, want := resp.Header.Values(k), first.Values(k); len(got) != 1 || got[0] != want[0] {
				t.Errorf("hit %d: %s = %q, want %q", i, k, got, want)
			}
		}
	}
	if got := e.upstreamHits("GET", d); got != 1 {
		t.Errorf("upstream saw %d GETs for %d, want 1", got, n)
	}
	m := e.cacheMetrics()
	for _, want := range []string{
		`gateway_manifest_cache_requests_total{result="hit"} 4`,
		`gateway_manifest_cache_requests_total{result="miss"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(m, "gateway_manifest_cache_bytes ") || strings.Contains(m, "gateway_manifest_cache_bytes 0\n") {
		t.Errorf("cache bytes not reported:\n%s", m)
	}
}

func TestManifestCacheHeadHit(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	body := manifestBody("v1", 500)
	d := reg.put("v1", body)
	e := newEnv(t, reg)
	tok := e.token()

	// A HEAD miss goes upstream and stores nothing: it has no body.
	e.getManifest(t, "HEAD", d, tok, 200, ociManifest)
	e.getManifest(t, "HEAD", d, tok, 200, ociManifest)
	if got := e.upstreamHits("HEAD", d); got != 2 {
		t.Errorf("upstream saw %d HEADs, want 2", got)
	}

	e.getManifest(t, "GET", d, tok, 200, ociManifest)
	resp, got := e.getManifest(t, "HEAD", d, tok, 200, ociManifest)
	if got != "" {
		t.Errorf("HEAD hit has a body: %q", got)
	}
	if n := e.upstreamHits("HEAD", d); n != 2 {
		t.Errorf("HEAD after GET went upstream (%d HEADs)", n)
	}
	for k, v := range map[string]string{
		"Content-Type":                    ociManifest,
		"Content-Length":                  itoa(len(body)),
		"Docker-Content-Digest":           d,
		"Docker-Distribution-Api-Version": "registry/2.0",
	} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("HEAD hit: %s = %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("X-Upstream") != "" {
		t.Error("a hit carries upstream headers that were not stored")
	}
}

func TestManifestCacheTags(t *testing.T) {
	t.Parallel()
	t.Run("tag_ttl 0s: every tag request upstream", func(t *testing.T) {
		reg := newManifestRegistry()
		reg.put("v1", manifestBody("v1", 300))
		e := newEnv(t, reg, withCache(func(c *ManifestCacheConfig) { c.TagTTL = new(time.Duration(0)) }))
		tok := e.token()
		for range 3 {
			e.getManifest(t, "GET", "v1", tok, 200, ociManifest)
		}
		if got := e.upstreamHits("GET", "v1"); got != 3 {
			t.Errorf("upstream saw %d tag GETs, want 3", got)
		}
		if m := e.cacheMetrics(); !strings.Contains(m, `{result="miss"} 0`) || !strings.Contains(m, `{result="hit"} 0`) {
			t.Errorf("tag requests counted as cache lookups:\n%s", m)
		}
	})
	for name, tc := range map[string]struct {
		ttl time.Duration
		opt envOption
	}{
		"unset: cached for 5s": {5 * time.Second, func(*Config, *Options) {}},
		"cached for tag_ttl":   {10 * time.Second, withCache(func(c *ManifestCacheConfig) { c.TagTTL = new(10 * time.Second) })},
	} {
		t.Run(name, func(t *testing.T) {
			clock := testutil.NewClock(time.Now())
			reg := newManifestRegistry()
			old := manifestBody("old", 300)
			reg.put("v1", old)
			e := newEnv(t, reg, tc.opt, func(_ *Config, o *Options) { o.Clock = clock.Now })
			tok := e.token()
			e.getManifest(t, "GET", "v1", tok, 200, ociManifest)
			// A push of v1: not seen until the TTL runs out.
			pushed := manifestBody("new", 300)
			reg.put("v1", pushed)
			clock.Advance(tc.ttl - 100*time.Millisecond)
			if _, got := e.getManifest(t, "GET", "v1", tok, 200, ociManifest); got != string(old) {
				t.Error("within tag_ttl: not the cached manifest")
			}
			e.getManifest(t, "HEAD", "v1", tok, 200, ociManifest)
			if got := e.upstreamHits("GET", "v1") + e.upstreamHits("HEAD", "v1"); got != 1 {
				t.Errorf("upstream saw %d tag requests within tag_ttl, want 1", got)
			}
			clock.Advance(200 * time.Millisecond)
			if _, got := e.getManifest(t, "GET", "v1", tok, 200, ociManifest); got != string(pushed) {
				t.Error("after tag_ttl: not the pushed manifest")
			}
			if got := e.upstreamHits("GET", "v1"); got != 2 {
				t.Errorf("upstream saw %d tag GETs, want 2", got)
			}
		})
	}
}

func TestManifestCacheAcceptVariants(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("", manifestBody("v1", 400))
	e := newEnv(t, reg)
	tok := e.token()
	const index = "application/vnd.oci.image.index.v1+json"
	// The upstream sees the manifest media types named, sorted (it echoes
	// the first as the Content-Type).
	variants := []struct {
		accept []string
		want   string
	}{
		{[]string{ociManifest}, ociManifest},
		{[]string{index}, index},
		{[]string{ociManifest + ", " + index}, index},
		{[]string{ociManifest, index}, index}, // two Accept lines, as docker sends them
		{[]string{index + ";q=0.5", "text/html, " + strings.ToUpper(ociManifest)}, index},
		{nil, ociManifest},
	}
	for round := range 2 {
		for _, v := range variants {
			resp, _ := e.getManifest(t, "GET", d, tok, 200, v.accept...)
			if got := resp.Header.Get("Content-Type"); got != v.want {
				t.Errorf("round %d, Accept %q: Content-Type %q, want %q", round, v.accept, got, v.want)
			}
		}
	}
	// One GET per distinct set of media types: {oci}, {index}, {oci, index}, {}.
	if got := e.upstreamHits("GET", d); got != 4 {
		t.Errorf("upstream saw %d GETs, want one per set of manifest media types (4)", got)
	}
}

// TestManifestCacheAcceptCannotFlush: Accept values that differ only in
// what is not a manifest media type share one entry, so that one client
// cannot fill the cache and evict everyone else's entries (finding 5).
func TestManifestCacheAcceptCannotFlush(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("", manifestBody("v1", 400))
	other := reg.put("", manifestBody("v2", 400))
	e := newEnv(t, reg, withCache(func(c *ManifestCacheConfig) { c.MaxBytes = 64 << 10 }))
	tok := e.token()
	e.getManifest(t, "GET", other, tok, 200, ociManifest)
	junk := strings.Repeat("j", 3<<10)
	for i := range 200 {
		e.getManifest(t, "GET", d, tok, 200, fmt.Sprintf("%s, application/x-junk-%d+%s;q=0.%d", ociManifest, i, junk, i%10))
	}
	if got := e.upstreamHits("GET", d); got != 1 {
		t.Errorf("upstream saw %d GETs of one digest with one media type, want 1", got)
	}
	e.getManifest(t, "GET", other, tok, 200, ociManifest)
	if got := e.upstreamHits("GET", other); got != 1 {
		t.Errorf("the other entry was evicted: %d upstream GETs, want 1", got)
	}
}

// TestAcceptBounded: an Accept header beyond any real client's is refused
// before anything goes upstream.
func TestAcceptBounded(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("", manifestBody("v1", 400))
	e := newEnv(t, reg)
	tok := e.token()
	for name, accept := range map[string][]string{
		"too long":       {ociManifest + ", " + strings.Repeat("x", 5<<10)},
		"too many parts": {strings.Repeat(ociManifest+",", 40)},
		"too many lines": slices.Repeat([]string{ociManifest}, 40),
	} {
		resp, body := e.getManifest(t, "GET", d, tok, http.StatusBadRequest, accept...)
		if errorCode(t, body) != httpx.CodeUnsupported || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %s", name, body)
		}
	}
	if n := e.upstream.count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
	// Blob and tag requests are bounded the same way.
	h := bearer(tok)
	h["Accept"] = slices.Repeat([]string{"*/*"}, 40)
	if resp := e.do("GET", "/v2/stable/app/tags/list", h); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("tags/list with a huge Accept: %d", resp.StatusCode)
	}
}

func TestParseAccept(t *testing.T) {
	t.Parallel()
	a := parseAccept([]string{"application/vnd.oci.image.index.v1+json;q=0.9, text/plain", " APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.V2+JSON "})
	b := parseAccept([]string{"application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.index.v1+json,application/vnd.oci.image.index.v1+json"})
	if a != b || a == 0 {
		t.Errorf("sets %b and %b differ", a, b)
	}
	if got := a.header(); len(got) != 1 || got[0] != "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json" {
		t.Errorf("header %q", got)
	}
	if parseAccept([]string{"text/html", ""}) != 0 || parseAccept(nil).header() != nil {
		t.Error("unknown types kept")
	}
	// Every known type has a bit of its own (acceptSet has 8).
	seen := map[acceptSet]bool{}
	for _, mt := range manifestMediaTypes {
		b := parseAccept([]string{mt})
		if b == 0 || seen[b] || b.header()[0] != mt {
			t.Errorf("%s: set %b", mt, b)
		}
		seen[b] = true
	}
	if !slices.IsSorted(manifestMediaTypes[:]) {
		t.Error("manifestMediaTypes not sorted")
	}
}

func TestManifestCacheRefusesToStore(t *testing.T) {
	t.Parallel()
	big := manifestBody("big", maxManifestBytes+1)
	small := manifestBody("small", 300)
	other := manifestBody("other", 300)
	for name, tc := range map[string]struct {
		ref string
		fm  fakeManifest
		cfg func(*ManifestCacheConfig)
	}{
		"digest header does not match the body": {ref: digest.FromBytes(small).String(),
			fm: fakeManifest{body: other, digest: digest.FromBytes(small).String()}},
		"digest header is not the reference": {ref: digest.FromBytes(small).String(),
			fm: fakeManifest{body: small, digest: digest.FromBytes(other).String()}},
		"digest header malformed": {ref: digest.FromBytes(small).String(), fm: fakeManifest{body: small, digest: "sha256:nope"}},
		"tag, digest header does not match": {ref: "v1", cfg: func(c *ManifestCacheConfig) { c.TagTTL = new(time.Minute) },
			fm: fakeManifest{body: other, digest: digest.FromBytes(small).String()}},
		"over 4 MiB":                  {ref: digest.FromBytes(big).String(), fm: fakeManifest{body: big}},
		"over max_bytes":              {ref: digest.FromBytes(small).String(), fm: fakeManifest{body: small}, cfg: func(c *ManifestCacheConfig) { c.MaxBytes = 500 }},
		"query string":                {ref: digest.FromBytes(small).String() + "?x=1", fm: fakeManifest{body: small}},
		"conditional (If-None-Match)": {ref: digest.FromBytes(small).String(), fm: fakeManifest{body: small}},
	} {
		t.Run(name, func(t *testing.T) {
			reg := newManifestRegistry()
			ref, _, _ := strings.Cut(tc.ref, "?")
			reg.set(ref, tc.fm)
			var opts []envOption
			if tc.cfg != nil {
				opts = append(opts, withCache(tc.cfg))
			}
			e := newEnv(t, reg, opts...)
			h := bearer(e.token())
			if strings.HasPrefix(name, "conditional") {
				h.Set("If-None-Match", `"sha256:0000"`)
			}
			for i := range 3 {
				resp := e.do("GET", "/v2/stable/app/manifests/"+tc.ref, h)
				if got := readBody(t, resp); resp.StatusCode != 200 || got != string(tc.fm.body) {
					t.Fatalf("GET %d: %d, %d bytes, want the upstream's %d bytes", i, resp.StatusCode, len(got), len(tc.fm.body))
				}
			}
			if got := e.upstreamHits("GET", ref); got != 3 {
				t.Errorf("upstream saw %d GETs, want 3 (nothing cached)", got)
			}
			if m := e.cacheMetrics(); !strings.Contains(m, `{result="hit"} 0`) || !strings.Contains(m, "gateway_manifest_cache_bytes 0\n") {
				t.Errorf("something was cached:\n%s", m)
			}
		})
	}
}

func TestManifestCacheDoesNotStoreErrors(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	e := newEnv(t, reg)
	tok := e.token()
	d := digest.FromBytes(manifestBody("later", 300)).String()
	e.getManifest(t, "GET", d, tok, 404)
	e.getManifest(t, "GET", d, tok, 404)
	// Pushed after the 404s: found at once.
	reg.put("", manifestBody("later", 300))
	e.getManifest(t, "GET", d, tok, 200)
	if got := e.upstreamHits("GET", d); got != 3 {
		t.Errorf("upstream saw %d GETs, want 3", got)
	}
}

// A body cut short by the upstream is a 502 for the client (its answer is
// read whole before it is sent) and nothing is stored.
func TestManifestCacheTruncatedBody(t *testing.T) {
	t.Parallel()
	body := manifestBody("v1", 600)
	d := digest.FromBytes(body).String()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nDocker-Content-Digest: %s\r\nContent-Length: %d\r\n\r\n", ociManifest, d, len(body))
		_, _ = rw.Write(body[:100])
		_ = rw.Flush()
	}))
	tok := e.token()
	for range 2 {
		_, got := e.getManifest(t, "GET", d, tok, http.StatusBadGateway)
		if errorCode(t, got) != "UNAVAILABLE" {
			t.Errorf("body %s", got)
		}
	}
	if got := e.upstream.count(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2", got)
	}
}

func TestManifestCacheLRUEviction(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	var ds []string
	for i := range 3 {
		ds = append(ds, reg.put("", manifestBody(fmt.Sprint("m", i), 1000)))
	}
	// Room for two entries, not three.
	e := newEnv(t, reg, withCache(func(c *ManifestCacheConfig) { c.MaxBytes = 2*(1000+manifestEntryOverhead+200) + 500 }))
	tok := e.token()
	get := func(i int) { e.getManifest(t, "GET", ds[i], tok, 200, ociManifest) }
	get(0)
	get(1)
	get(0) // 0 is now the most recently used: 1 goes first
	get(2)
	get(0)
	get(2)
	get(1)
	for i, want := range []int{1, 2, 1} {
		if got := e.upstreamHits("GET", ds[i]); got != want {
			t.Errorf("manifest %d: %d upstream GETs, want %d", i, got, want)
		}
	}
	c := e.gw.manifests
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.entries; l.size > c.maxBytes || l.len() != 2 {
		t.Errorf("cache holds %d bytes in %d entries, max %d", l.size, l.len(), c.maxBytes)
	}
	var sum int64
	for _, en := range c.entries.entries {
		sum += en.cost
	}
	if sum != c.entries.size {
		t.Errorf("size %d, entries add up to %d", c.entries.size, sum)
	}
}

// The token check runs before the cache: a cached manifest is never served
// to a request that would be refused without it.
func TestManifestCacheAfterAuthorization(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("v1", manifestBody("v1", 300))
	e := newEnv(t, reg, withCache(func(c *ManifestCacheConfig) { c.TagTTL = new(time.Hour) }))
	for _, ref := range []string{d, "v1"} {
		e.getManifest(t, "GET", ref, e.token(), 200, ociManifest)
	}
	before := e.upstream.count()

	other := e.claims()
	other.Access = []auth.ResourceActions{{Type: "repository", Name: "stable/other", Actions: []string{"pull"}}}
	expired := e.claims()
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	push := e.claims()
	push.Access[0].Actions = []string{"push"}
	for name, tok := range map[string]string{
		"another repository": e.sign(other),
		"expired":            e.sign(expired),
		"push only":          e.sign(push),
		"forged":             e.token() + "x",
	} {
		for _, method := range []string{"GET", "HEAD"} {
			for _, ref := range []string{d, "v1"} {
				resp, body := e.getManifest(t, method, ref, tok, http.StatusUnauthorized, ociManifest)
				if resp.Header.Get("Docker-Content-Digest") != "" || strings.Contains(body, "schemaVersion") {
					t.Errorf("%s, %s %s: the cached manifest leaked", name, method, ref)
				}
			}
		}
	}
	resp := e.do("GET", "/v2/stable/app/manifests/"+d, http.Header{"Accept": {ociManifest}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if got := e.upstream.count(); got != before {
		t.Errorf("refused requests reached the upstream: %d", got-before)
	}
	if m := e.cacheMetrics(); !strings.Contains(m, `gateway_manifest_cache_requests_total{result="miss"} 2`) ||
		!strings.Contains(m, `{result="hit"} 0`) {
		t.Errorf("refused requests were cache lookups:\n%s", m)
	}
}

// Concurrent misses of one key make one upstream request; the others wait
// for it and are answered from the cache.
func TestManifestCacheCollapsesMisses(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	body := manifestBody("v1", 300)
	d := reg.put("", body)
	reg.hold, reg.arrived = make(chan struct{}), make(chan struct{}, 16)
	e := newEnv(t, reg)
	tok := e.token()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	fetch := func() {
		defer wg.Done()
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2/stable/app/manifests/"+d, nil)
		req.Header = bearer(tok)
		resp, err := noRedirects.Do(req)
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if resp.StatusCode != 200 || b.String() != string(body) {
			errs <- fmt.Errorf("status %d, %d bytes", resp.StatusCode, b.Len())
		}
	}
	waiting := make(chan struct{}, n)
	e.gw.manifests.waiting = func() { waiting <- struct{}{} }
	wg.Add(1)
	go fetch()
	<-reg.arrived // the first GET is upstream, held there
	for range n - 1 {
		wg.Add(1)
		go fetch()
	}
	for range n - 1 {
		<-waiting
	}
	close(reg.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.upstream.count(); got != 1 {
		t.Errorf("upstream saw %d requests, want 1", got)
	}
	if m := e.cacheMetrics(); !strings.Contains(m, fmt.Sprintf(`gateway_manifest_cache_requests_total{result="hit"} %d`, n-1)) {
		t.Errorf("metrics:\n%s", m)
	}
}

// Waiters whose first GET got nothing storable go upstream themselves.
func TestManifestCacheWaitersFallBackUpstream(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := digest.FromBytes([]byte("absent")).String()
	reg.hold, reg.arrived = make(chan struct{}), make(chan struct{}, 16)
	e := newEnv(t, reg)
	tok := e.token()
	done := make(chan int, 2)
	get := func() {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2/stable/app/manifests/"+d, nil)
		req.Header = bearer(tok)
		resp, err := noRedirects.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}
	waiting := make(chan struct{}, 1)
	e.gw.manifests.waiting = func() { waiting <- struct{}{} }
	go get()
	<-reg.arrived
	go get()
	<-waiting
	c := e.gw.manifests
	c.mu.Lock()
	f := c.inflight[manifestKey{name: "stable/app", ref: d}]
	c.mu.Unlock()
	if f == nil || f.waiters.Load() != 1 {
		t.Fatal("the second GET does not wait for the first")
	}
	close(reg.hold)
	<-reg.arrived // the waiter's own upstream request
	for range 2 {
		if code := <-done; code != http.StatusNotFound {
			t.Errorf("status %d, want 404", code)
		}
	}
	if got := e.upstream.count(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2", got)
	}
}

func TestManifestCacheDisabled(t *testing.T) {
	t.Parallel()
	reg := newManifestRegistry()
	d := reg.put("", manifestBody("v1", 300))
	e := newEnv(t, reg, withCache(func(c *ManifestCacheConfig) { c.Disabled = true; c.TagTTL = new(time.Hour) }))
	tok := e.token()
	for range 3 {
		e.getManifest(t, "GET", d, tok, 200)
	}
	if got := e.upstreamHits("GET", d); got != 3 {
		t.Errorf("upstream saw %d GETs, want 3", got)
	}
	if e.gw.manifests != nil || strings.Contains(e.cacheMetrics(), "gateway_manifest_cache") {
		t.Error("a disabled cache exists")
	}
}
