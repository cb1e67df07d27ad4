package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkServeManifest is the gateway's own cost of a manifest GET: the
// route, the (cached) token check, the rewrite and the response copy, with
// an upstream transport that answers from memory.
func BenchmarkServeManifest(b *testing.B) {
	upstream := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		h := http.Header{
			"Content-Type":                    {"application/vnd.oci.image.manifest.v1+json"},
			"Docker-Content-Digest":           {dgst},
			"Docker-Distribution-Api-Version": {"registry/2.0"},
		}
		return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(bytes.NewReader(testManifest)),
			ContentLength: int64(len(testManifest)), Request: r}, nil
	})
	e := newEnv(b, http.NotFoundHandler(), func(c *Config, o *Options) {
		o.Transport = upstream
		off := false
		c.AccessLog = &off
	})
	benchServe(b, e, "/v2/stable/app/manifests/latest")
}

// benchServe measures GETs of path through the gateway's handler.
func benchServe(b *testing.B, e *env, path string) {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Bearer "+e.token())
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		e.gw.Handler().ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(c int)           { d.code = c }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkServeManifestCached is a manifest GET by digest answered from
// the manifest cache: the route, the token check and the stored answer.
func BenchmarkServeManifestCached(b *testing.B) {
	reg := newManifestRegistry()
	d := reg.put("", testManifest)
	e := newEnv(b, reg, func(c *Config, o *Options) {
		off := false
		c.AccessLog = &off
	})
	req := httptest.NewRequest("GET", "/v2/stable/app/manifests/"+d, nil)
	req.Header.Set("Authorization", "Bearer "+e.token())
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	e.gw.Handler().ServeHTTP(&discardWriter{h: http.Header{}}, req)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: http.Header{}}
		e.gw.Handler().ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
	if n := e.upstream.count(); n != 1 {
		b.Fatalf("upstream saw %d requests", n)
	}
}

// BenchmarkServeManifestUpstream is a manifest GET that goes to a real
// upstream over loopback (manifest cache off), through the default
// upstream transport and, in the same run, through floorHandler: the same
// upstream transport with none of the gateway's own work, the floor of
// this hop. The upstream's own work is in both.
func BenchmarkServeManifestUpstream(b *testing.B) {
	for _, tt := range []struct {
		name  string
		floor bool
	}{
		{"upstream", false},
		{"floor", true},
	} {
		b.Run(tt.name, func(b *testing.B) {
			reg := newManifestRegistry()
			d := reg.put("", testManifest)
			e := newEnv(b, reg, func(c *Config, o *Options) {
				c.ManifestCache.Disabled = true
				off := false
				c.AccessLog = &off
			})
			path := "/v2/stable/app/manifests/" + d
			if !tt.floor {
				benchServe(b, e, path)
				return
			}
			t := NewUpstreamTransport(e.cfg.Upstream)
			b.Cleanup(t.CloseIdleConnections)
			up := mustParse(b, e.upSrv.URL)
			h := floorHandler(t, up, testPrefix, basic(testUser, testPassword))
			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			b.ReportAllocs()
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// floorHandler forwards a GET to the upstream with a fixed credential and
// copies the answer's status, headers and body: no route, token, rewriting,
// metrics or access record. Only for measuring.
func floorHandler(t http.RoundTripper, up *url.URL, prefix, authorization string) http.Handler {
	auth := []string{authorization}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := (&http.Request{
			Method: r.Method, URL: &url.URL{Scheme: up.Scheme, Host: up.Host, Path: "/v2/" + prefix + strings.TrimPrefix(r.URL.Path, "/v2/")},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Accept": r.Header["Accept"], "Authorization": auth},
		}).WithContext(r.Context())
		resp, err := t.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
}
