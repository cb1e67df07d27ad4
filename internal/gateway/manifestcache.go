package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// maxManifestBytes is the largest manifest cached: distribution's own limit
// on a manifest body. Larger answers stream through uncached.
const maxManifestBytes = 4 << 20

// manifestEntryOverhead is charged to every entry on top of its bytes (the
// entry, its map slot and header slices), so that many tiny manifests are
// bounded by max_bytes too.
const manifestEntryOverhead = 256

// cacheBypassHeaders make a request go upstream: their answers (304, 206,
// 412) are not the one stored 200, and the cache does not evaluate them.
// If-None-Match is not among them: a hit answers it from the upstream's
// Etag (see notModified), as registry clients revalidate with it.
var cacheBypassHeaders = []string{"If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range"}

// manifestKey identifies a cached answer. The name is the client's: the
// upstream name is the configured prefix plus it, the same for every entry
// of one gateway. Accept is part of the key because the upstream picks the
// manifest's media type by it: the set of manifest media types it names,
// which is also all the upstream is sent.
type manifestKey struct {
	name, ref string
	accept    acceptSet
}

// manifestEntry is one upstream 200 answer, immutable once stored, so a
// hit may write it after the lock is released (and after it was evicted).
type manifestEntry struct {
	body []byte
	// Header values built at insert time and shared by every hit; each
	// slice has len == cap, so a later Add on the response's header copies
	// instead of writing into it.
	contentType, digest, length, apiVersion []string
	// The upstream's validators, nil when it sent none: a cached answer
	// carries them as the upstream's does, so that a client's If-None-Match
	// gets the same answer from the cache as from the upstream.
	etag, lastModified []string
}

// manifestFlight is one upstream GET that other misses of the same key wait
// for instead of going upstream too.
type manifestFlight struct {
	done    chan struct{}
	waiters atomic.Int32 // for tests and debugging
}

// manifestCache is a size-bounded LRU of upstream manifest answers, safe for
// concurrent use. The gateway consults it only after the token check.
type manifestCache struct {
	maxBytes int64
	tagTTL   time.Duration
	clock    func() time.Time
	log      *slog.Logger

	// waiting, when set (by tests, before any request), is called each
	// time a request starts waiting for a flight.
	waiting func()

	mu       sync.Mutex
	entries  *lru[manifestKey, *manifestEntry] // cost: bytes
	inflight map[manifestKey]*manifestFlight

	cacheMetrics // held: bytes
}

// newManifestCache builds the cache of cfg and registers its metrics on
// reg; nil when the cache is disabled.
func newManifestCache(cfg ManifestCacheConfig, clock func() time.Time, log *slog.Logger, reg prometheus.Registerer) *manifestCache {
	if cfg.Disabled {
		return nil
	}
	return &manifestCache{
		maxBytes: cfg.MaxBytes,
		tagTTL:   cfg.TagTTLOrZero(),
		clock:    clock,
		log:      log,
		entries:  newLRU[manifestKey, *manifestEntry](cfg.MaxBytes),
		inflight: map[manifestKey]*manifestFlight{},
		cacheMetrics: newCacheMetrics(reg, "gateway_manifest_cache",
			"Manifest requests the cache could answer (by digest; by tag with tag_ttl), by result.",
			"gateway_manifest_cache_bytes", "Bytes the manifest cache holds, counted as max_bytes counts them."),
	}
}

func isDigestRef(ref string) bool { return strings.IndexByte(ref, ':') >= 0 }

// keyFor is the cache key of a checked manifest request, or false when the
// request must go upstream: a tag while tag_ttl is 0, a query, or a
// conditional request other than If-None-Match, or a range request.
func (c *manifestCache) keyFor(r *http.Request, route Route, accept acceptSet) (manifestKey, bool) {
	if r.URL.RawQuery != "" || (c.tagTTL <= 0 && !isDigestRef(route.Reference)) {
		return manifestKey{}, false
	}
	h := r.Header
	for _, k := range cacheBypassHeaders {
		if _, ok := h[k]; ok {
			return manifestKey{}, false
		}
	}
	return manifestKey{name: route.Name, ref: route.Reference, accept: accept}, true
}

// lookup returns the live entry of k. On a miss with join, it also returns
// the upstream GET in flight for k, and leader reports that the caller
// started it and must end it with land.
func (c *manifestCache) lookup(k manifestKey, join bool) (e *manifestEntry, f *manifestFlight, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	size := c.entries.size
	e, ok := c.entries.get(k, c.clock())
	if c.entries.size != size {
		c.held.Set(float64(c.entries.size))
	}
	if ok {
		return e, nil, false
	}
	if !join {
		return nil, nil, false
	}
	if f = c.inflight[k]; f != nil {
		return nil, f, false
	}
	f = &manifestFlight{done: make(chan struct{})}
	c.inflight[k] = f
	return nil, f, true
}

// land ends flight f of k, waking its waiters; later calls do nothing.
func (c *manifestCache) land(k manifestKey, f *manifestFlight) {
	c.mu.Lock()
	if c.inflight[k] == f {
		delete(c.inflight, k)
		close(f.done)
	}
	c.mu.Unlock()
}

// add stores an answer, evicting the least recently used entries beyond
// max_bytes; an answer that alone exceeds it is not stored.
func (c *manifestCache) add(k manifestKey, body []byte, contentType, dgst, apiVersion, etag, lastModified string) {
	e := &manifestEntry{
		body:         body,
		contentType:  []string{contentType},
		digest:       []string{dgst},
		length:       []string{strconv.Itoa(len(body))},
		apiVersion:   []string{apiVersion},
		etag:         headerValue(etag),
		lastModified: headerValue(lastModified),
	}
	cost := int64(len(body)+len(k.name)+len(k.ref)+len(contentType)+len(dgst)+len(apiVersion)+
		len(etag)+len(lastModified)) + manifestEntryOverhead
	var expires time.Time
	if !isDigestRef(k.ref) {
		expires = c.clock().Add(c.tagTTL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries.add(k, e, cost, expires) {
		c.held.Set(float64(c.entries.size))
	}
}

// headerValue is a stored header's value, nil for an absent one.
func headerValue(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// write answers r with e: the stored headers, and the body unless r is a
// HEAD; a 304 without a body when r's If-None-Match matches e's Etag.
func (e *manifestEntry) write(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if e.notModified(r.Header["If-None-Match"]) {
		// What a 304 must carry of the 200's headers (RFC 9110 15.4.5):
		// the Etag; and nothing of the body.
		h["Etag"] = e.etag
		h["Docker-Distribution-Api-Version"] = e.apiVersion
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h["Content-Type"] = e.contentType
	h["Content-Length"] = e.length
	h["Docker-Content-Digest"] = e.digest
	h["Docker-Distribution-Api-Version"] = e.apiVersion
	if e.etag != nil {
		h["Etag"] = e.etag
	}
	if e.lastModified != nil {
		h["Last-Modified"] = e.lastModified
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.body)
	}
}

// notModified reports whether an If-None-Match (its header values) matches
// e's Etag: "*", or one of its entity tags by weak comparison (RFC 9110
// 13.1.2). An unquoted value equal to the tag's opaque part matches too, as
// distribution accepts one, so that the cache answers what its upstream
// would.
func (e *manifestEntry) notModified(values []string) bool {
	if len(values) == 0 || e.etag == nil {
		return false
	}
	etag := strings.TrimPrefix(e.etag[0], "W/")
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
			if part == "*" || part == etag || (part != "" && `"`+part+`"` == etag) {
				return true
			}
		}
	}
	return false
}

// conditionalMiss reports whether a cache hit cannot answer r: an
// If-None-Match that a stored answer without an Etag cannot evaluate.
func (e *manifestEntry) conditionalMiss(r *http.Request) bool {
	_, cond := r.Header["If-None-Match"]
	return cond && e.etag == nil
}

// manifestFill is what a GET that missed and leads the upstream fetch hands
// the forwarder, so that the upstream's answer is stored under key and the
// flight's waiters woken.
type manifestFill struct {
	key    manifestKey
	flight *manifestFlight
}

// serveManifest answers a manifest request whose token was checked: from
// the cache, after waiting for a GET of the same key already in flight, or
// from the upstream.
func (g *Gateway) serveManifest(w http.ResponseWriter, r *http.Request, rt *routed, accept acceptSet) error {
	c := g.manifests
	k, ok := c.keyFor(r, rt.Route, accept)
	if !ok {
		return g.proxy.forward(w, r, rt, nil)
	}
	// A HEAD miss goes upstream as it is: it has no body to store; nor
	// has a conditional GET's answer when it is a 304.
	_, cond := r.Header["If-None-Match"]
	e, f, leader := c.lookup(k, r.Method == http.MethodGet && !cond)
	if f != nil && !leader {
		f.waiters.Add(1)
		if c.waiting != nil {
			c.waiting()
		}
		select {
		case <-f.done:
		case <-r.Context().Done():
		}
		// Whatever the first GET got: a stored entry, or nothing, and then
		// this one goes upstream on its own.
		e, _, _ = c.lookup(k, false)
	}
	if e != nil && e.conditionalMiss(r) {
		e = nil
	}
	if g.tracer != nil {
		noteCacheHit(r, e != nil)
	}
	if e != nil {
		c.hits.Inc()
		rt.digest = e.digest[0]
		e.write(w, r)
		return nil
	}
	c.misses.Inc()
	if !leader {
		return g.proxy.forward(w, r, rt, nil)
	}
	defer c.land(k, f)
	return g.proxy.forward(w, r, rt, &manifestFill{key: k, flight: f})
}

// fill is part of the forwarder's finalize: it stores a missed GET's 200
// answer when its body is at most maxManifestBytes (as Content-Length says,
// so nothing is read without a bound) and hashes to its
// Docker-Content-Digest, which for a digest reference must be the
// reference. The body is read whole before it goes to the client; at these
// sizes that costs less than streaming it twice.
func (c *manifestCache) fill(resp *http.Response, f *manifestFill) error {
	// Waiters wake once the entry is stored (or not), not after the copy
	// to this client.
	defer c.land(f.key, f.flight)
	h := resp.Header
	ct, dh := h.Get("Content-Type"), h.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 || resp.ContentLength > maxManifestBytes ||
		resp.ContentLength > c.maxBytes || ct == "" || h.Get("Content-Encoding") != "" {
		return nil
	}
	dg, err := digest.Parse(dh)
	if err != nil || !dg.Algorithm().Available() || (isDigestRef(f.key.ref) && string(dg) != f.key.ref) {
		return nil
	}
	body := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		return fmt.Errorf("read upstream manifest: %w", err)
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if dg.Algorithm().FromBytes(body) != dg {
		c.log.Warn("upstream manifest does not match its Docker-Content-Digest; not cached",
			slog.String("name", f.key.name), slog.String("reference", f.key.ref), slog.String("digest", dh))
		return nil
	}
	c.add(f.key, body, ct, dh, h.Get("Docker-Distribution-Api-Version"), h.Get("Etag"), h.Get("Last-Modified"))
	return nil
}
