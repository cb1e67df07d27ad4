//go:build bounds

package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Allocation guards for the two hot paths, so that a refactor cannot make
// them dearer unnoticed (BenchmarkServeManifest* measure the time). They
// count what the Go runtime and net/http allocate too, which a Go upgrade
// may change without a bug: `make bounds` runs them (-tags bounds), not
// `make test`. The
// bounds are what the paths allocate now; raise one only for a reason
// that is worth its cost on every request.
const (
	// A manifest answered from the cache: the request copy that carries
	// the access record, the record itself (with the recorder, its context
	// and the route) and the upstream name and path (one string).
	maxCachedAllocs = 3
	// A manifest fetched through the gateway's round-trippers and
	// forwarder: those 3; the outgoing request and its header map (3);
	// and the upstream's answer from memory (the response, its header map
	// and values, the body: 5). The credential goes on the outgoing
	// request's map as it is built: no copy (TestCredentialOnOwnRequest).
	maxUpstreamAllocs = 11
)

func TestAllocsCachedManifest(t *testing.T) {
	skipUnderRace(t)
	reg := newManifestRegistry()
	d := reg.put("", testManifest)
	e := newEnv(t, reg, func(c *Config, o *Options) {
		off := false
		c.AccessLog = &off
	})
	got := manifestGETAllocs(t, e, "/v2/stable/app/manifests/"+d)
	if n := e.upstream.count(); n != 1 {
		t.Fatalf("%d upstream requests", n)
	}
	if got > maxCachedAllocs {
		t.Errorf("a cached manifest GET allocates %v times, at most %d expected", got, maxCachedAllocs)
	}
}

func TestAllocsUpstreamManifest(t *testing.T) {
	skipUnderRace(t)
	header := http.Header{
		"Content-Type":                    {"application/vnd.oci.image.manifest.v1+json"},
		"Docker-Content-Digest":           {dgst},
		"Docker-Distribution-Api-Version": {"registry/2.0"},
		"Content-Length":                  {itoa(len(testManifest))},
		"Date":                            {"Tue, 01 Dec 2026 16:00:00 GMT"},
	}
	body := bytes.NewReader(testManifest)
	upstream := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		body.Reset(testManifest)
		return &http.Response{StatusCode: 200, Header: header.Clone(), Body: io.NopCloser(body),
			ContentLength: int64(len(testManifest)), Request: r}, nil
	})
	e := newEnv(t, http.NotFoundHandler(), func(c *Config, o *Options) {
		o.Transport = upstream
		c.ManifestCache.Disabled = true
		off := false
		c.AccessLog = &off
	})
	got := manifestGETAllocs(t, e, "/v2/stable/app/manifests/latest")
	if got > maxUpstreamAllocs {
		t.Errorf("a manifest GET through the upstream path allocates %v times, at most %d expected", got, maxUpstreamAllocs)
	}
}

// manifestGETAllocs is the average number of allocations of a manifest GET
// of path through the gateway's handler, answered 200, into a response
// writer that is reused (its header map cleared).
func manifestGETAllocs(t *testing.T, e *env, path string) float64 {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token())
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	h := e.gw.Handler()
	w := &discardWriter{h: http.Header{}}
	got := testing.AllocsPerRun(200, func() {
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, req)
	})
	if w.code != http.StatusOK {
		t.Fatalf("status %d", w.code)
	}
	return got
}

// skipUnderRace: the race detector allocates on its own, so allocation
// counts mean nothing under it.
func skipUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
}
