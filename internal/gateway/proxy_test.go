package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/httpx"
	"github.com/acme/registry-gateway/pkg/upstream"
)

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func TestForwardManifest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	tok := e.token()
	const accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
	for _, method := range []string{"GET", "HEAD"} {
		for _, ref := range []string{"latest", dgst} {
			h := bearer(tok)
			h.Set("Accept", accept)
			h.Set("Cookie", "session=1")
			resp := e.do(method, "/v2/stable/app/manifests/"+ref, h)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %d %s", method, ref, resp.StatusCode, body)
			}
			want := map[string]string{
				"Content-Type":                    "application/vnd.oci.image.manifest.v1+json",
				"Content-Length":                  itoa(len(testManifest)),
				"Docker-Content-Digest":           dgst,
				"Docker-Distribution-Api-Version": "registry/2.0",
			}
			for k, v := range want {
				if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s %s: %s = %q, want %q", method, ref, k, got, v)
				}
			}
			if method == "GET" && body != string(testManifest) {
				t.Errorf("body %q", body)
			}
			up := e.upstream.last()
			if up.Method != method || up.Path != "/v2/acme/stable/app/manifests/"+ref {
				t.Errorf("upstream saw %s %s", up.Method, up.Path)
			}
			if got := up.Header.Values("Authorization"); len(got) != 1 || got[0] != basic(testUser, testPassword) {
				t.Errorf("upstream Authorization %q", got)
			}
			if up.Header.Get("Cookie") != "" {
				t.Errorf("cookie forwarded")
			}
			// The media types named, sorted (see parseAccept).
			const sorted = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
			if got := up.Header.Values("Accept"); len(got) != 1 || got[0] != sorted {
				t.Errorf("upstream Accept %q, want %q", got, sorted)
			}
		}
	}
}

// TestHeaderAllowLists: only the request headers that select an answer go
// upstream (never the client's credential, cookies, X-Amz-* or a body), and
// only the response headers registry clients read come back (never request
// IDs, Server or the storage's X-Amz-*) (finding 4).
func TestHeaderAllowLists(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	var gotBody []byte
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		h := w.Header()
		h.Set("X-Amzn-Requestid", "4a3b-req")
		h.Set("X-Amz-Id-2", "s3-host-id")
		h.Set("X-Amz-Request-Id", "s3-req")
		h.Set("X-Amz-Server-Side-Encryption", "AES256")
		h.Set("Server", "AmazonS3")
		h.Set("Set-Cookie", "upstream=1")
		h.Set("Etag", `"abc"`)
		h.Set("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
		reg.ServeHTTP(w, r)
	}))
	h := bearer(e.token())
	for k, v := range map[string]string{
		"Accept": "application/vnd.oci.image.manifest.v1+json", "User-Agent": "docker/28", "If-None-Match": `"x"`,
		"X-Amz-Security-Token": "client-aws-token", "Cookie": "c=1", "Proxy-Authorization": "Basic eDp5",
		"X-Forwarded-For": "6.6.6.6", "X-Custom": "anything", "Range": "bytes=0-1",
	} {
		h.Set(k, v)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2/stable/app/manifests/latest", strings.NewReader("a GET body"))
	req.Header = h
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	up := e.upstream.last()
	for k := range up.Header {
		switch k {
		case "Accept", "User-Agent", "If-None-Match", "Range", "Authorization", "Accept-Encoding":
		default:
			t.Errorf("request header %s = %q reached the upstream", k, up.Header[k])
		}
	}
	if up.Header.Get("Authorization") != basic(testUser, testPassword) || up.Header.Get("User-Agent") != "docker/28" {
		t.Errorf("upstream headers %v", up.Header)
	}
	if len(gotBody) != 0 {
		t.Errorf("a GET body reached the upstream: %q", gotBody)
	}
	for k := range resp.Header {
		switch k {
		case "Content-Type", "Content-Length", "Docker-Content-Digest", "Docker-Distribution-Api-Version", "Etag", "Last-Modified", "Date":
		default:
			t.Errorf("response header %s = %q reached the client", k, resp.Header[k])
		}
	}
	if resp.Header.Get("Etag") != `"abc"` {
		t.Errorf("Etag not passed: %v", resp.Header)
	}
}

// TestOutgoingRequest: the upstream gets the route's path on its own host,
// the query as it came when it parses cleanly and only its parsable
// parameters when not, and no User-Agent of the gateway's own when the
// client sent none.
func TestOutgoingRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	for _, tt := range []struct{ query, want string }{
		{"", ""},
		{"?n=1&last=v1", "n=1&last=v1"},
		{"?n=1;last=v1", ""},
		{"?n=1&x=%zz&last=v1", "last=v1&n=1"},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v2/stable/app/tags/list"+tt.query, nil)
		req.Header = bearer(e.token())
		req.Header["User-Agent"] = nil // net/http's client sends none then
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		up := e.upstream.last()
		if up.Path != "/v2/acme/stable/app/tags/list" || up.RawQuery != tt.want {
			t.Errorf("query %q: upstream got %s?%s, want the query %q", tt.query, up.Path, up.RawQuery, tt.want)
		}
		if ua, ok := up.Header["User-Agent"]; ok {
			t.Errorf("query %q: upstream got User-Agent %q", tt.query, ua)
		}
	}
}

// TestUpstreamErrorsScrubbed: an upstream error reaches the client as its
// registry code with that code's standard message, for GET and HEAD alike
// (HEAD with the Content-Length of GET's body): ECR's texts name the AWS
// account and the repository prefix (findings 4 and 9).
func TestUpstreamErrorsScrubbed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, upstream string
		status               int
		code, message        string
	}{
		{"ECR repository unknown", "/v2/stable/x/manifests/v1",
			`{"errors":[{"code":"NAME_UNKNOWN","message":"The repository with name 'acme/stable/x' does not exist in the registry with id '123456789012'"}]}`,
			404, "NAME_UNKNOWN", "repository name not known to registry"},
		{"manifest unknown with detail", "/v2/stable/x/manifests/v1",
			`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown: acme/stable/x","detail":{"registry":"123456789012"}}]}`,
			404, "MANIFEST_UNKNOWN", "manifest unknown"},
		{"blob unknown", "/v2/stable/x/blobs/" + dgst,
			`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown in 123456789012"}]}`,
			404, "BLOB_UNKNOWN", "blob unknown to registry"},
		{"code that is no registry code", "/v2/stable/x/manifests/v1",
			`{"errors":[{"code":"RepositoryNotFoundException","message":"acme/stable/x in 123456789012"}]}`,
			400, "UNSUPPORTED", "The operation is unsupported."},
		{"throttled, not JSON", "/v2/stable/x/tags/list", `<html>Rate exceeded for 123456789012</html>`,
			429, "TOOMANYREQUESTS", "too many requests"},
		// distribution's codes outside the spec's list become the spec's
		// code for the status and route.
		{"TAG_INVALID", "/v2/stable/x/manifests/v1", `{"errors":[{"code":"TAG_INVALID","message":"manifest tag did not match URI"}]}`,
			400, "UNSUPPORTED", "The operation is unsupported."},
		{"PAGINATION_NUMBER_INVALID", "/v2/stable/x/tags/list?n=-1",
			`{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"invalid number of results requested"}]}`,
			400, "UNSUPPORTED", "The operation is unsupported."},
		{"UNKNOWN on a 404", "/v2/stable/x/manifests/v1", `{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}`,
			404, "MANIFEST_UNKNOWN", "manifest unknown"},
		// A range outside the blob: plain text, as distribution and S3
		// answer it; the spec has no code for it.
		{"range not satisfiable", "/v2/stable/x/blobs/" + dgst, `<Error><Code>InvalidRange</Code><BucketName>acme-123456789012</BucketName></Error>`,
			416, "", "requested range not satisfiable\n"},
		{"RANGE_INVALID", "/v2/stable/x/blobs/" + dgst, `{"errors":[{"code":"RANGE_INVALID","message":"invalid content range"}]}`,
			416, "", "requested range not satisfiable\n"},
		// An upstream without the referrers API: a plain 404 that clients
		// fall back to the tag schema from, not NAME_UNKNOWN.
		{"referrers API missing", "/v2/stable/x/referrers/" + dgst, "404 page not found\n",
			404, "", "404 page not found\n"},
		{"referrers API missing, JSON without a spec code", "/v2/stable/x/referrers/" + dgst,
			`{"errors":[{"code":"NOT_FOUND","message":"no route"}]}`, 404, "", "404 page not found\n"},
		// An upstream with the API that does not know the repository.
		{"referrers of an unknown repository", "/v2/stable/x/referrers/" + dgst,
			`{"errors":[{"code":"NAME_UNKNOWN","message":"repository acme/stable/x not known"}]}`,
			404, "NAME_UNKNOWN", "repository name not known to registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", itoa(len(tc.upstream)))
				w.WriteHeader(tc.status)
				if r.Method != http.MethodHead {
					_, _ = io.WriteString(w, tc.upstream)
				}
			}))
			claims := e.claims()
			claims.Access[0].Name = "stable/x"
			tok := e.sign(claims)
			resp := e.do("GET", tc.path, bearer(tok))
			body := readBody(t, resp)
			want := `{"errors":[{"code":"` + tc.code + `","message":"` + tc.message + `"}]}` + "\n"
			wantType := "application/json"
			if tc.code == "" {
				want, wantType = tc.message, "text/plain; charset=utf-8"
			}
			if ct := resp.Header.Get("Content-Type"); ct != wantType {
				t.Errorf("GET: Content-Type %q, want %q", ct, wantType)
			}
			if resp.StatusCode != tc.status || body != want {
				t.Errorf("GET: %d %q, want %d %q", resp.StatusCode, body, tc.status, want)
			}
			if resp.Header.Get("Content-Length") != itoa(len(body)) {
				t.Errorf("GET Content-Length %q for a body of %d", resp.Header.Get("Content-Length"), len(body))
			}
			head := e.do("HEAD", tc.path, bearer(tok))
			if head.StatusCode != tc.status || head.Header.Get("Content-Length") != itoa(len(body)) {
				t.Errorf("HEAD: %d, Content-Length %q; want %d, %d (GET's body)", head.StatusCode, head.Header.Get("Content-Length"), tc.status, len(body))
			}
		})
	}
}

func TestForwardWithoutPrefixKeepsPath(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = strings.Replace(r.URL.Path, "/v2/", "/v2/acme/", 1)
		reg.ServeHTTP(w, r)
	}), func(c *Config, _ *Options) { c.Upstream.RepositoryPrefix = "" })
	resp := e.do("GET", "/v2/stable/app/manifests/latest?x=1", bearer(e.token()))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	if up := e.upstream.last(); up.Path != "/v2/stable/app/manifests/latest" || up.RawQuery != "x=1" {
		t.Errorf("upstream saw %s?%s", up.Path, up.RawQuery)
	}
}

func TestTagsListAndLinkRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	resp := e.do("GET", "/v2/stable/app/tags/list?n=1", bearer(e.token()))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if body != `{"name":"stable/app","tags":["v1"]}` {
		t.Errorf("body %s", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}
	if got := resp.Header.Get("Link"); got != `</v2/stable/app/tags/list?last=v1&n=1>; rel="next"` {
		t.Errorf("Link %q", got)
	}
	if up := e.upstream.last(); up.RawQuery != "n=1" {
		t.Errorf("query %q", up.RawQuery)
	}
}

// TestTagsListNamesTheRoute: a tags list is answered for the repository
// the client asked for, whatever name the upstream puts in it.
func TestTagsListNamesTheRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"acme/elsewhere/other","tags":["v1"]}`)
	}))
	resp := e.do("GET", "/v2/stable/app/tags/list", bearer(e.token()))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || body != `{"name":"stable/app","tags":["v1"]}` {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestLocationRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst512, bearer(e.token()))
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/v2/stable/app/blobs/"+dgst {
		t.Fatalf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	up := &upstreamProxy{upstream: mustParse(t, e.upSrv.URL), prefix: testPrefix}
	for in, want := range map[string]string{
		e.upSrv.URL + "/v2/acme/stable/app/blobs/" + dgst + "?a=b": "/v2/stable/app/blobs/" + dgst + "?a=b",
		"/v2/acme/stable/app/blobs/" + dgst:                        "/v2/stable/app/blobs/" + dgst,
		"https://s3.example.com/v2/acme/x?sig=1":                   "https://s3.example.com/v2/acme/x?sig=1",
		"/other":                                                   "/other",
	} {
		if got := up.clientURL(in); got != want {
			t.Errorf("clientURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// rotatingFetcher hands out the registry's current password and counts
// fetches.
type rotatingFetcher struct {
	reg     *fakeRegistry
	fetches atomic.Int32
}

func (f *rotatingFetcher) Fetch(context.Context) (upstream.Credential, error) {
	f.fetches.Add(1)
	f.reg.mu.Lock()
	defer f.reg.mu.Unlock()
	return upstream.Credential{Username: testUser, Password: f.reg.password, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func TestUpstream401RefreshesOnceAndRetries(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	fetcher := &rotatingFetcher{reg: reg}
	source := upstream.NewSource(fetcher, upstream.Options{})
	t.Cleanup(source.Close)
	e := newEnv(t, reg, func(_ *Config, o *Options) { o.Credentials = source })
	tok := e.token()
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(tok)); resp.StatusCode != http.StatusOK {
		t.Fatalf("first pull: %d", resp.StatusCode)
	}
	reg.setPassword("rotated-password-2")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(tok))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("pull after rotation: %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if n := fetcher.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (the first, and one refresh shared by all)", n)
	}
	if n := counterValue(e.gw.metrics.upstreamRetries); n < 1 {
		t.Errorf("retries = %v", n)
	}
}

func TestUpstreamKeepsRefusing(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	reg.setPassword("something else")
	e := newEnv(t, reg)
	resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != httpx.CodeUnavailable {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if h := resp.Header.Get("Www-Authenticate"); h != "" {
		t.Errorf("upstream challenge leaked: %q", h)
	}
	if strings.Contains(body, testPassword) || strings.Contains(body, "puller") {
		t.Errorf("body shows the credential: %s", body)
	}
}

func TestUpstreamFailures(t *testing.T) {
	t.Parallel()
	t.Run("5xx", func(t *testing.T) {
		e := newEnv(t, newFakeRegistry())
		resp := e.do("GET", "/v2/stable/app/manifests/boom", bearer(e.token()))
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != httpx.CodeUnavailable || strings.Contains(body, "internal detail") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("404 passes without the upstream's detail", func(t *testing.T) {
		e := newEnv(t, newFakeRegistry())
		resp := e.do("GET", "/v2/stable/app/manifests/nope", bearer(e.token()))
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusNotFound || errorCode(t, body) != "MANIFEST_UNKNOWN" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		for _, leak := range []string{"acme/", "123456789012"} {
			if strings.Contains(body, leak) {
				t.Errorf("404 body leaks %q: %s", leak, body)
			}
		}
		if resp.Header.Get("Content-Length") != itoa(len(body)) {
			t.Errorf("Content-Length %q for a body of %d", resp.Header.Get("Content-Length"), len(body))
		}
		if resp := e.do("HEAD", "/v2/stable/app/manifests/nope", bearer(e.token())); resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD: %d", resp.StatusCode)
		}
	})
	t.Run("4xx that is not JSON", func(t *testing.T) {
		e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, "<html>slow down, internal-host-7</html>")
		}))
		resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusTooManyRequests || errorCode(t, body) != httpx.CodeTooManyRequests || strings.Contains(body, "internal-host") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("down", func(t *testing.T) {
		e := newEnv(t, newFakeRegistry())
		e.upSrv.Close()
		resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
		if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway || errorCode(t, body) != httpx.CodeUnavailable {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}), func(c *Config, _ *Options) { c.Upstream.ResponseHeaderTimeout = 50 * time.Millisecond })
		defer close(release)
		resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
		if body := readBody(t, resp); resp.StatusCode != http.StatusGatewayTimeout || errorCode(t, body) != httpx.CodeUnavailable {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("no credential", func(t *testing.T) {
		failing := upstream.NewSource(fetcherFunc(func(context.Context) (upstream.Credential, error) {
			return upstream.Credential{}, errors.New("AccessDenied for " + testPassword[:3])
		}), upstream.Options{MinBackoff: time.Hour})
		t.Cleanup(failing.Close)
		e := newEnv(t, newFakeRegistry(), func(_ *Config, o *Options) { o.Credentials = failing })
		resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token()))
		if body := readBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable || errorCode(t, body) != httpx.CodeUnavailable {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if n := e.upstream.count(); n != 0 {
			t.Errorf("forwarded without a credential: %d", n)
		}
		if resp := e.do("GET", "/readyz", nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("readyz %d", resp.StatusCode)
		}
	})
}

// TestBlobStreamsInConstantMemory pulls a blob larger than any buffer
// through the gateway and checks the bytes arrive unchanged.
func TestBlobStreams(t *testing.T) {
	t.Parallel()
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", dgst)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}))
	resp := e.do("GET", "/v2/stable/app/blobs/"+dgst, bearer(e.token()))
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, blob) || resp.ContentLength != int64(len(blob)) {
		t.Fatalf("blob: %v, %d bytes, length %d", err, len(got), resp.ContentLength)
	}
	h := bearer(e.token())
	h.Set("Range", "bytes=16-31")
	resp = e.do("GET", "/v2/stable/app/blobs/"+dgst, h)
	if body := readBody(t, resp); resp.StatusCode != http.StatusPartialContent || body != "0123456789abcdef" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
}

// TestUpstreamCutMidBody: an upstream answer that ends before its
// Content-Length reaches the client cut as well, never as a shorter answer
// that looks whole.
func TestUpstreamCutMidBody(t *testing.T) {
	t.Parallel()
	reg := newFakeRegistry()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			reg.ServeHTTP(w, r)
			return
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n" +
			"Content-Length: 1000\r\n\r\n{\"schemaVersion\":2")
		_ = buf.Flush()
	}), func(c *Config, _ *Options) { c.ManifestCache.Disabled = true })
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2/stable/app/manifests/latest", nil)
	req.Header = bearer(e.token())
	resp, err := noRedirects.Do(req)
	if err != nil {
		return // cut before the status line left the gateway's buffer
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Fatalf("the client read a whole answer of %d bytes, status %d", len(b), resp.StatusCode)
	}

	// Under a server, the handler aborts (the server then drops the
	// connection) and the access line is still written.
	r := httptest.NewRequest("GET", "/v2/stable/app/manifests/latest", nil)
	r.Header = bearer(e.token())
	r = r.WithContext(context.WithValue(r.Context(), http.ServerContextKey, &http.Server{}))
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", v)
			}
		}()
		e.gw.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}()
	if !strings.Contains(e.logs.String(), `"msg":"upstream body read failed"`) {
		t.Errorf("the cut is not logged:\n%s", e.logs.String())
	}
}

// TestClientGoneMidStream: a client that disconnects in the middle of a
// blob must not break the gateway (the forwarder aborts the handler).
func TestClientGoneMidStream(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	reg := newFakeRegistry()
	e := newEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/") {
			reg.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", "100000000")
		_, _ = w.Write(make([]byte, 1<<16))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /v2/stable/app/blobs/"+dgst+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.token()+"\r\n\r\n")
	<-started
	conn.Close()
	// The gateway still serves.
	if resp := e.do("GET", "/v2/stable/app/manifests/latest", bearer(e.token())); resp.StatusCode != http.StatusOK {
		t.Fatalf("after a client went away mid-stream: %d", resp.StatusCode)
	}
	// A client hanging up is no upstream failure: nothing at WARN.
	if !e.logs.WaitFor(`"route":"blob"`, 5*time.Second) {
		t.Fatal("no access line for the cut stream")
	}
	if logs := e.logs.String(); strings.Contains(logs, "read error during body copy") {
		t.Errorf("a client that went away is logged as an upstream read error:\n%s", logs)
	}
}

// TestHeadContentLength: every HEAD answer carries the Content-Length of
// the body the same GET gets, errors of the gateway's own included
// (finding 9).
func TestHeadContentLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	tok := e.token()
	for _, tc := range []struct {
		path string
		h    http.Header
	}{
		{"/v2/", nil},
		{"/v2/", bearer(tok)},
		{"/v2/stable/app/manifests/latest", nil},
		{"/v2/stable/other/manifests/latest", bearer(tok)},
		{"/v2/stable/app/manifests/latest", bearer(tok)},
		{"/v2/stable/app/manifests/nope", bearer(tok)},
		{"/v2/Bad/manifests/x", bearer(tok)},
	} {
		get := e.do("GET", tc.path, tc.h)
		body := readBody(t, get)
		head := e.do("HEAD", tc.path, tc.h)
		if head.StatusCode != get.StatusCode || head.Header.Get("Content-Length") != itoa(len(body)) {
			t.Errorf("%s: HEAD %d Content-Length %q; GET %d with %d bytes", tc.path, head.StatusCode,
				head.Header.Get("Content-Length"), get.StatusCode, len(body))
		}
	}
}

// TestCredentialOnOwnRequest: the credential transport sends a request
// that already carries the current credential's own header value as it is,
// and any other (none, a client's, an equal value in another slice, a
// stale one) on a copy with the current credential, leaving the request it
// was given unchanged.
func TestCredentialOnOwnRequest(t *testing.T) {
	t.Parallel()
	a := &authHeader{creds: StaticCredential{Username: testUser, Password: testPassword}, clock: time.Now}
	cur, err := a.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sent *http.Request
	ct := &credentialTransport{auth: a, next: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		sent = r
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}
	want := basic(testUser, testPassword)
	for _, tt := range []struct {
		name   string
		header http.Header
		same   bool
	}{
		{"built with the current value", http.Header{"Authorization": cur.value}, true},
		{"none", http.Header{}, false},
		{"an equal value of its own", http.Header{"Authorization": {want}}, false},
		{"another credential", http.Header{"Authorization": {"Basic c3RhbGU6c3RhbGU="}}, false},
		{"two values", http.Header{"Authorization": {cur.value[0], "Bearer x"}}, false},
	} {
		req := httptest.NewRequest("GET", "http://upstream.test/v2/", nil)
		req.Header = tt.header
		before := req.Header.Clone()
		if _, err := ct.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if got := sent.Header["Authorization"]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: sent Authorization %q", tt.name, got)
		}
		if (sent == req) != tt.same {
			t.Errorf("%s: sent the request given: %v, want %v", tt.name, sent == req, tt.same)
		}
		if !reflect.DeepEqual(req.Header, before) {
			t.Errorf("%s: the request given was changed: %v", tt.name, req.Header)
		}
	}
}
