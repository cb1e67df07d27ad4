package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/acme/registry-gateway/internal/httpx"
)

// bufferPool lends the forwarder its copy buffers. It pools array
// pointers: converting the returned slice back to one allocates nothing,
// where pooling *[]byte would allocate a slice header per Put.
type bufferPool struct{ p sync.Pool }

// copyBufferSize is io.Copy's own size. The forwarder holds one buffer for
// the whole copy of an answer, a blob stream's too, and 32 KiB streams a
// blob (proxy_blobs) about three times as fast as 8 KiB for 13 MiB more at
// 1,000 streams (bench/notes/2026-12-07-issue17-nethttp-transport.md).
const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(p []byte) {
	if cap(p) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(p[:copyBufferSize]))
	}
}

// upstreamProxy forwards checked requests to the upstream registry.
type upstreamProxy struct {
	upstream *url.URL
	prefix   string
	refused  func() // metrics hook: an upstream 401/403 answered 502
	// auth is the credential transport's: its current header value goes
	// on each outgoing request (see outgoing); nil: none does.
	auth *authHeader
}

// forwardedRequestHeaders are the only client request headers the upstream
// gets: what selects the representation and the bytes of an answer. The
// client's credential, cookies and anything AWS-specific (X-Amz-*) are for
// the gateway, or nobody.
var forwardedRequestHeaders = append([]string{"Accept"}, forwardedToRedirect...)

// passedResponseHeader reports whether an upstream response header (by its
// canonical name) is one a client gets: what registry clients read.
// Request IDs, Server and the storage's X-Amz-* headers name the
// infrastructure behind the gateway. A switch, since it runs for every
// header of every answer.
func passedResponseHeader(k string) bool {
	switch k {
	case "Content-Type", "Content-Length", "Content-Range", "Content-Encoding", "Accept-Ranges",
		"Docker-Content-Digest", "Docker-Distribution-Api-Version", "Location", "Link",
		"Etag", "Last-Modified", "Cache-Control",
		// The referrers API's answer to an artifactType filter: without
		// it clients filter the list again themselves.
		"Oci-Filters-Applied":
		return true
	}
	return false
}

// noUserAgent keeps the upstream transport from sending a Go User-Agent of
// its own when the client sent none. Shared: never changed.
var noUserAgent = []string{""}

// outgoing is the request the upstream gets for in: the checked route's
// upstream path, the query as it came (unparsable parameters dropped), and
// only the allowed headers, sharing their values. The upstream credential
// is the credential transport's to set; the header map is built with the
// current one's value (when there is one), which the credential transport
// then takes as it is instead of copying the request to set it. A shallow
// copy of in keeps its context (the client's cancellation) without a
// second copy.
func (p *upstreamProxy) outgoing(in *http.Request, rt *routed) *http.Request {
	o := &struct {
		req http.Request
		url url.URL
	}{req: *in}
	out := &o.req
	o.url = url.URL{Scheme: p.upstream.Scheme, Host: p.upstream.Host, Path: rt.UpstreamPath(p.prefix),
		RawQuery: cleanQuery(in.URL.RawQuery)}
	out.URL = &o.url
	out.Host, out.RequestURI, out.RemoteAddr, out.TLS = "", "", "", nil
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Close = false
	out.Form, out.PostForm, out.MultipartForm, out.Trailer, out.GetBody = nil, nil, nil, nil, nil
	out.Pattern = ""
	h := make(http.Header, 4)
	for _, k := range forwardedRequestHeaders {
		if v, ok := in.Header[k]; ok {
			h[k] = v
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
	if p.auth != nil {
		if cur := p.auth.cur.Load(); cur != nil {
			h["Authorization"] = cur.value
		}
	}
	out.Header = h
	// Registry reads have no body (the gateway dropped any); none goes
	// upstream, whatever the client declared.
	out.Body, out.ContentLength, out.TransferEncoding = nil, 0, nil
	return out
}

// cleanQuery drops a query that does not parse cleanly (a ";" separator or
// a bad escape) to its parsable parameters, as net/http's ReverseProxy did:
// the upstream must not read the query another way than Go does.
func cleanQuery(q string) string {
	for i := 0; i < len(q); {
		switch q[i] {
		case ';':
			return reencodeQuery(q)
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return reencodeQuery(q)
			}
			i += 3
		default:
			i++
		}
	}
	return q
}

func reencodeQuery(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(b byte) bool { return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F' }

// forwarder sends a checked request upstream and writes the answer: a
// request builder, one RoundTrip and a header allow-list, not a transport
// (the transport is net/http's, see NewUpstreamTransport). One request is
// built for the upstream (no clone of the client's request and headers to
// strip again), the answer's allowed headers are copied once. There are no
// hop-by-hop headers to strip: only allow-listed ones pass either way.
//
// It is not net/http/httputil's ReverseProxy: that one passes each 1xx
// answer of the upstream (103 Early Hints, …) on to the client with all
// its headers as they came, before any ModifyResponse could see them,
// which would break the allow-list of response headers (request IDs,
// Server, X-Amz-*). The upstream's 1xx answers stay here.
type forwarder struct {
	proxy *upstreamProxy
	// transport sends every request but blobs; blobs goes through the
	// redirect follower too with proxy_blobs.
	transport, blobs http.RoundTripper
	// The caches the upstream's answers fill; nil when disabled.
	redirects *blobRedirects
	manifests *manifestCache
	buffers   copyBuffers
	log       *slog.Logger
}

// copyBuffers lends the forwarder its copy buffers (a *bufferPool; tests
// count what it lends).
type copyBuffers interface {
	Get() []byte
	Put([]byte)
}

var _ copyBuffers = (*bufferPool)(nil)

// forward sends r, checked and routed as rt, upstream and writes the
// answer; fill, when not nil, is the manifest cache's flight this request
// leads, which the answer lands. An error is returned, for serve to write,
// only while nothing is written; a body that fails half-way cuts the
// connection (abort).
func (f *forwarder) forward(w http.ResponseWriter, r *http.Request, rt *routed, fill *manifestFill) error {
	if rt.Name == "" {
		// Unreachable through the gateway's handler; failing closed,
		// the request goes nowhere.
		return upstreamError(r, errNotRouted)
	}
	transport := f.transport
	if rt.Kind == RouteBlob {
		transport = f.blobs
	}
	resp, err := transport.RoundTrip(f.proxy.outgoing(r, rt))
	if err != nil {
		return upstreamError(r, err)
	}
	if resp.Body == nil {
		resp.Body = http.NoBody
	}
	if err := f.finalize(resp, rt, fill); err != nil {
		resp.Body.Close()
		return upstreamError(r, err)
	}
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	if v := resp.Header["Docker-Content-Digest"]; len(v) > 0 && rt.Kind == RouteManifest {
		rt.digest = v[0]
	}
	w.WriteHeader(resp.StatusCode)
	err = copyBody(w, resp, f.buffers, f.log)
	resp.Body.Close()
	if err != nil {
		abort(r)
	}
	return nil
}

// finalize turns the upstream's answer for rt into the client's, then
// lets the caches store it as the client gets it: after the upstream's
// errors and headers were turned into the gateway's.
func (f *forwarder) finalize(resp *http.Response, rt *routed, fill *manifestFill) error {
	if err := f.proxy.modifyResponse(resp, rt); err != nil {
		return err
	}
	if f.redirects != nil {
		f.redirects.fill(resp, rt, f.proxy.foreign)
	}
	if fill != nil {
		return f.manifests.fill(resp, fill)
	}
	return nil
}

// abort cuts the connection of a request whose answer failed half-way: the
// status is out, so that is all that is left, and the client then sees a
// truncated answer, not a short one that looks whole. Only a server
// recovers that panic.
func abort(r *http.Request) {
	if r.Context().Value(http.ServerContextKey) != nil {
		panic(http.ErrAbortHandler)
	}
}

// errNotRouted: a request reached the forwarder without a checked route.
var errNotRouted = errors.New("request not routed")

// copyBody copies the answer's body to w through a pooled buffer, blobs
// like any other answer, flushing after each write when the length is
// unknown, as ReverseProxy does, so that a streamed answer is not held
// back.
func copyBody(w http.ResponseWriter, resp *http.Response, buffers copyBuffers, log *slog.Logger) error {
	if resp.Body == http.NoBody {
		return nil
	}
	var flusher http.Flusher
	if resp.ContentLength < 0 {
		flusher, _ = w.(http.Flusher)
	}
	buf := buffers.Get()
	defer buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			if !errors.Is(rerr, context.Canceled) {
				log.Warn("upstream body read failed", slog.String("error", rerr.Error()))
			}
			return rerr
		}
	}
}

// errUpstreamRefused is an upstream 401/403 the credential retry could not
// cure: the gateway's own credential or permissions are at fault, not the
// client's, and passing the upstream's Basic challenge on would only
// confuse the client.
var errUpstreamRefused = errors.New("upstream refused the registry credential")

// maxTagsListBody bounds a tags/list answer rewritten for the prefix.
const maxTagsListBody = 16 << 20

var apiVersionValue = []string{"registry/2.0"}

// modifyResponse turns the upstream's answer for rt into the gateway's:
// upstream names and URLs back to the client's, and upstream auth failures
// and server errors into the gateway's errors.
func (p *upstreamProxy) modifyResponse(resp *http.Response, rt *routed) error {
	h := resp.Header
	if h == nil {
		h = http.Header{}
		resp.Header = h
	}
	for k := range h {
		if !passedResponseHeader(k) {
			delete(h, k)
		}
	}
	resp.Trailer = nil
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		drain(resp.Body)
		if p.refused != nil {
			p.refused()
		}
		return fmt.Errorf("%w: %s", errUpstreamRefused, resp.Status)
	case resp.StatusCode >= 500:
		drain(resp.Body)
		return &upstreamStatusError{status: resp.StatusCode}
	case resp.StatusCode >= 400:
		return scrubError(resp, rt.Kind)
	}
	if _, ok := h["Docker-Distribution-Api-Version"]; !ok {
		h["Docker-Distribution-Api-Version"] = apiVersionValue
	}
	// Read and set as the canonical keys they are: no Get, no Set.
	if loc := h["Location"]; len(loc) > 0 && loc[0] != "" {
		h["Location"] = []string{p.clientURL(loc[0])}
	}
	if link := h["Link"]; len(link) > 0 && link[0] != "" {
		h["Link"] = []string{p.rewriteLink(link[0])}
	}
	if p.prefix != "" && resp.StatusCode == http.StatusOK && resp.Request.Method == http.MethodGet &&
		rt.Kind == RouteTags {
		// Without a prefix the names agree already.
		return rewriteTagsList(resp, rt.Name)
	}
	return nil
}

type upstreamStatusError struct{ status int }

func (e *upstreamStatusError) Error() string { return "upstream answered " + strconv.Itoa(e.status) }

// clientURL maps a URL the upstream sent back (Location, Link) to the
// client's view: on the upstream's host it becomes a path on the gateway's,
// without the prefix; another host (ECR's S3 redirects) is left untouched.
func (p *upstreamProxy) clientURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if p.foreign(u) {
		return raw
	}
	if rest, ok := strings.CutPrefix(u.Path, "/v2/"+p.prefix); ok {
		u.Path = "/v2/" + rest
		u.RawPath = ""
	}
	u.Scheme, u.Host, u.User = "", "", nil
	return u.String()
}

// foreign reports whether u points anywhere but the upstream (a relative
// URL points at it).
func (p *upstreamProxy) foreign(u *url.URL) bool {
	return u.Opaque != "" || (u.Scheme != "" && u.Scheme != p.upstream.Scheme) ||
		(u.Host != "" && u.Host != p.upstream.Host) || (u.Host == "" && u.Scheme != "")
}

// rewriteLink rewrites the URL of a `<url>; rel="next"` Link header.
func (p *upstreamProxy) rewriteLink(link string) string {
	i, j := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if i < 0 || j < i {
		return link
	}
	return link[:i+1] + p.clientURL(link[i+1:j]) + link[j:]
}

// rewriteTagsList puts the client's name in a tags/list answer. Such
// answers are small, so this one is read whole (bounded).
func rewriteTagsList(resp *http.Response, name string) error {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTagsListBody+1))
	if err != nil {
		return fmt.Errorf("read tags list: %w", err)
	}
	if len(data) > maxTagsListBody {
		return errors.New("upstream tags list too large")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(data, &body); err != nil {
		return fmt.Errorf("upstream tags list: %w", err)
	}
	var upstreamName string
	if err := json.Unmarshal(body["name"], &upstreamName); err == nil {
		// The answer is for the route's repository, whatever name the
		// upstream gives it: never show the upstream's.
		body["name"], _ = json.Marshal(name)
	}
	out, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// maxErrorBody bounds an upstream error answer read for scrubbing.
const maxErrorBody = 64 << 10

// defaultErrorCode is the code of an upstream 4xx error answer without a
// spec code of its own (not JSON, a HEAD whose GET got another answer, or
// a code outside the spec's list, such as distribution's TAG_INVALID or
// PAGINATION_NUMBER_INVALID): the spec code distribution gives that status
// and route; "" where a plain answer without a JSON code is the right one
// (see plainErrorBody).
func defaultErrorCode(status int, kind RouteKind) string {
	switch {
	case status == http.StatusNotFound && kind == RouteManifest:
		return httpx.CodeManifestUnknown
	case status == http.StatusNotFound && kind == RouteBlob:
		return httpx.CodeBlobUnknown
	case status == http.StatusNotFound && kind == RouteReferrers:
		// An upstream without the referrers API (distribution, older
		// Harbor, many mirrors) answers the route with a plain 404, and
		// the spec tells clients to fall back to the tag schema on one:
		// a NAME_UNKNOWN here makes oras give up on the repository.
		return ""
	case status == http.StatusNotFound:
		return httpx.CodeNameUnknown
	case status == http.StatusTooManyRequests:
		return httpx.CodeTooManyRequests
	case status == http.StatusRequestedRangeNotSatisfiable:
		// A range outside the blob: the spec has no code for it (the
		// blob is known, so not BLOB_UNKNOWN), distribution answers it
		// as net/http's ServeContent does, in plain text with the
		// Content-Range of the blob's size, and so does S3.
		return ""
	}
	// UNSUPPORTED is the spec's code for a request with an invalid set of
	// parameters, which is what any other 4xx to a read is.
	return httpx.CodeUnsupported
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// plainErrorBody is the body of an error answered without a JSON code: what
// net/http (and so distribution) writes for a 404, the status text else.
func plainErrorBody(status int) []byte {
	if status == http.StatusNotFound {
		return []byte("404 page not found\n")
	}
	return []byte(strings.ToLower(http.StatusText(status)) + "\n")
}

// scrubError replaces an upstream error answer (404 MANIFEST_UNKNOWN, 429
// TOOMANYREQUESTS, …) by one with the same status and codes and only the
// codes' standard messages: ECR's own messages and details carry the AWS
// account ID, the repository prefix and the upstream's names. Codes outside
// the spec's list become the spec code for the status and route
// (defaultErrorCode); where that is none, the answer is a plain one in
// text, as distribution gives (a referrers 404, a 416). A HEAD answer (its
// body is a GET's, see headErrorAsGET) gets the Content-Length of the body
// a GET gets, and no body.
func scrubError(resp *http.Response, kind RouteKind) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read upstream error: %w", err)
	}
	var in struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	out := struct {
		Errors []errorJSON `json:"errors"`
	}{Errors: []errorJSON{}}
	fallback := defaultErrorCode(resp.StatusCode, kind)
	if json.Unmarshal(data, &in) == nil {
		for _, e := range in.Errors {
			if len(out.Errors) == 8 {
				break
			}
			msg, ok := httpx.SpecMessage(e.Code)
			if !ok {
				if fallback == "" {
					continue
				}
				e.Code, msg = fallback, specMessage(fallback)
			}
			out.Errors = append(out.Errors, errorJSON{Code: e.Code, Message: msg})
		}
	}
	var body []byte
	if len(out.Errors) == 0 && fallback == "" {
		body = plainErrorBody(resp.StatusCode)
		resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		if len(out.Errors) == 0 {
			out.Errors = append(out.Errors, errorJSON{Code: fallback, Message: specMessage(fallback)})
		}
		if body, err = json.Marshal(out); err != nil {
			return err
		}
		body = append(body, '\n')
		resp.Header.Set("Content-Type", "application/json")
	}
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.Request.Method == http.MethodHead {
		resp.Body = http.NoBody
	}
	return nil
}

// specMessage is the standard message of a spec code.
func specMessage(code string) string {
	msg, _ := httpx.SpecMessage(code)
	return msg
}

// upstreamError is the answer to a transport failure or a refusal of
// modifyResponse, as a registry JSON error; the cause goes to the log
// only.
func upstreamError(r *http.Request, err error) error {
	var e *httpx.Error
	var se *upstreamStatusError
	switch {
	case r.Context().Err() != nil:
		// The client hung up first: whatever failed upstream failed
		// because its request was cancelled.
		e = httpx.ClientClosed(err)
	case errors.As(err, &e):
	case errors.Is(err, errNoCredential):
		e = &httpx.Error{Status: http.StatusServiceUnavailable, Code: httpx.CodeUnavailable, Message: "no upstream credential", Err: err}
	case errors.Is(err, errUpstreamRefused):
		e = &httpx.Error{Status: http.StatusBadGateway, Code: httpx.CodeUnavailable, Message: "upstream refused the registry credential", Err: err}
	case errors.As(err, &se):
		e = &httpx.Error{Status: http.StatusBadGateway, Code: httpx.CodeUnavailable, Message: "upstream error", Err: err}
	default:
		e = &httpx.Error{Status: upstreamStatus(err), Code: httpx.CodeUnavailable, Message: "upstream unavailable", Err: err}
		if e.Status == http.StatusGatewayTimeout {
			e.Message = "upstream timed out"
		}
	}
	return e
}
