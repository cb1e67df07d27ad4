package gateway

import (
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// blobRedirectKey is a blob in a repository as the upstream names it: a
// presigned URL is the upstream's answer for that repository only (ECR
// checks the repository's policy before it signs), so it is never reused
// for another, even for the same digest.
type blobRedirectKey struct{ repo, digest string }

// blobRedirect is the client-visible redirect answer stored for a key.
type blobRedirect struct {
	status int
	// Header values shared by every hit, with len == cap (see
	// manifestEntry).
	location, digest []string
}

// blobRedirects answers blob GETs with the redirect the upstream gave for
// the same blob in the same repository a moment ago, so that a pull's blob
// GETs cost the upstream (and ECR's GetDownloadUrlForLayer rate limit)
// nothing while the presigned URL stays good. Safe for concurrent use; the
// gateway consults it only after the token check.
type blobRedirects struct {
	ttl time.Duration
	// expiry is the provider's reading of a redirect URL's validity.
	expiry func(*url.URL) (time.Time, bool)
	clock  func() time.Time

	mu      sync.Mutex
	entries *lru[blobRedirectKey, *blobRedirect] // cost: 1 an entry

	cacheMetrics // held: entries
}

// newBlobRedirects builds the cache of cfg and registers its metrics on
// reg; nil when it is disabled, or useless because the gateway follows
// redirects itself (proxy_blobs).
func newBlobRedirects(cfg BlobRedirectCacheConfig, proxyBlobs bool, expiry func(*url.URL) (time.Time, bool), clock func() time.Time, reg prometheus.Registerer) *blobRedirects {
	if cfg.Disabled || proxyBlobs {
		return nil
	}
	return &blobRedirects{
		ttl:     cfg.TTL,
		expiry:  expiry,
		clock:   clock,
		entries: newLRU[blobRedirectKey, *blobRedirect](int64(cfg.MaxEntries)),
		cacheMetrics: newCacheMetrics(reg, "gateway_blob_redirect_cache",
			"Blob GETs the redirect cache could answer, by result (a hit costs the upstream nothing).",
			"gateway_blob_redirect_cache_entries", "Blob redirects the cache holds."),
	}
}

// serve answers a checked blob GET from the cache, and reports whether it
// did. Anything but a plain GET (a HEAD, a query) goes upstream.
func (c *blobRedirects) serve(w http.ResponseWriter, r *http.Request, rt *routed) bool {
	if r.Method != http.MethodGet || r.URL.RawQuery != "" {
		return false
	}
	c.mu.Lock()
	n := c.entries.len()
	e, ok := c.entries.get(blobRedirectKey{rt.Upstream, rt.Reference}, c.clock())
	if c.entries.len() != n {
		c.held.Set(float64(c.entries.len()))
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Inc()
		return false
	}
	c.hits.Inc()
	h := w.Header()
	h["Location"] = e.location
	if e.digest != nil {
		h["Docker-Content-Digest"] = e.digest
	}
	h["Docker-Distribution-Api-Version"] = apiVersionValue
	h["Content-Length"] = zeroLength
	w.WriteHeader(e.status)
	return true
}

var zeroLength = []string{"0"}

// fill is part of the forwarder's finalize, after the upstream's answer for
// rt was turned into the client's: it stores a blob GET's redirect to another
// host than the upstream, for as long as its URL says it stays good (see
// reuseFor). Errors and redirects to the upstream itself are never stored.
func (c *blobRedirects) fill(resp *http.Response, rt *routed, foreign func(*url.URL) bool) {
	req := resp.Request
	if rt.Kind != RouteBlob || req.Method != http.MethodGet || req.URL.RawQuery != "" || !isRedirect(resp.StatusCode) {
		return
	}
	locs := resp.Header["Location"]
	if len(locs) != 1 {
		return
	}
	u, err := url.Parse(locs[0])
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !foreign(u) {
		return
	}
	expires, ok := c.expiry(u)
	if !ok {
		return
	}
	now := c.clock()
	d := reuseFor(expires, now, c.ttl)
	if d <= 0 {
		return
	}
	e := &blobRedirect{status: resp.StatusCode, location: []string{locs[0]}}
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != "" {
		e.digest = []string{dg}
	}
	c.mu.Lock()
	c.entries.add(blobRedirectKey{rt.Upstream, rt.Reference}, e, 1, now.Add(d))
	c.held.Set(float64(c.entries.len()))
	c.mu.Unlock()
}

// reuseFor is how long from now a redirect URL valid until expires may be
// handed out again: min(ttl, half its remaining validity), so that a client
// that gets it late still has time to follow it.
func reuseFor(expires, now time.Time, ttl time.Duration) time.Duration {
	return min(ttl, expires.Sub(now)/2)
}
