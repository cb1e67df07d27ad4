package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// NewUpstreamTransport is the one transport shared by every upstream
// request: net/http's Transport, with a keep-alive pool per host, behind
// the guard of UpstreamTransport. It is the standard library's on purpose:
// it frames every answer (Content-Length, chunked, close-delimited,
// HEAD/204/304 without a body), closes a connection on which bytes arrive
// while no request waits for an answer, and refuses malformed status
// lines and headers, so that one customer's request never reads what the
// upstream sent for another's. HTTP/1.1 only: with HTTP/2 a thousand
// concurrent blob streams would share a few connections whose per-stream
// flow-control windows (4 MiB in Go) buffer in user space, where TCP keeps
// the back-pressure of slow clients in the kernel. It asks for no
// compression, so bodies, Content-Length and digests pass through byte for
// byte. HTTPS_PROXY and friends are honoured.
func NewUpstreamTransport(u UpstreamConfig) *UpstreamTransport {
	dialer := &net.Dialer{Timeout: u.DialTimeout, KeepAlive: 30 * time.Second}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &UpstreamTransport{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &upstreamConn{Conn: c}, nil
		},
		TLSHandshakeTimeout:    u.TLSHandshakeTimeout,
		ResponseHeaderTimeout:  u.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           4 * u.MaxIdleConnsPerHost,
		MaxIdleConnsPerHost:    u.MaxIdleConnsPerHost,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		Protocols:              &protocols,
	}}
}

// maxResponseHeaderBytes bounds an upstream answer's status line and
// headers (net/http's Transport refuses more, and the request fails).
const maxResponseHeaderBytes = 1 << 20

// checkedStatus fails an answer whose status is not a final one, 200–599,
// and closes its body unread, which closes its connection: the upstream
// is confused, and nothing it sent on that connection is to be trusted.
// net/http's ReadResponse takes any three digits ("000", "099", "600"),
// and its Transport serves a code under 100 as a final answer, body and
// all; the server would then panic on WriteHeader(0), or pass a 600 on.
// The Transport consumes 1xx informational answers itself (their headers
// counting towards MaxResponseHeaderBytes), so the only 1xx it hands back
// is 101 Switching Protocols, which the gateway never asks for: its body
// would be the raw connection.
func checkedStatus(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		if err != nil || (resp.StatusCode >= 200 && resp.StatusCode <= 599) {
			return resp, err
		}
		if resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, &upstreamStatusError{status: resp.StatusCode}
	})
}

// roundTripperFunc lets small wrappers be written as closures.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// timed observes the latency of each upstream round trip (to the response
// headers).
func timed(next http.RoundTripper, observe func(time.Duration), clock func() time.Time) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		start := clock()
		resp, err := next.RoundTrip(r)
		observe(clock().Sub(start))
		return resp, err
	})
}

// credentialTransport is the one place the upstream credential is put on a
// request. When the upstream answers 401, it refreshes the credential once
// (shared with every concurrent request that saw the same 401) and retries
// the request once; not within refreshHoldOff of the last such refresh.
// Only requests without a body are retried, which is every request the
// gateway forwards.
type credentialTransport struct {
	next    http.RoundTripper
	auth    *authHeader
	retried func() // metrics hook
}

func (t *credentialTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	first, err := t.auth.get(req.Context())
	if err != nil {
		return nil, err
	}
	if v := req.Header["Authorization"]; len(v) != 1 || &v[0] != &first.value[0] {
		// Unless the request was built with this very header value (the
		// forwarder's are: see upstreamProxy.outgoing), it gets it on a
		// copy. Only authHeader makes these slices, so the identity of
		// their array is proof enough.
		req = withAuthorization(req, first)
	}
	sent := first.value[0]
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.Body != http.NoBody) {
		return resp, err
	}
	var h *headerFor
	if cur := t.auth.cur.Load(); cur != nil && cur.value[0] == sent {
		if t.auth.heldOff(cur) {
			// Refreshed moments ago and refused again: the 401 stands.
			return resp, nil
		}
		h, err = t.auth.invalidate(req.Context(), cur.cred)
	} else {
		// Another request refreshed meanwhile: use its result.
		h, err = t.auth.get(req.Context())
	}
	if err != nil {
		drain(resp.Body)
		return nil, err
	}
	if h.value[0] == sent {
		// Nothing new to try: the upstream's 401 stands.
		return resp, nil
	}
	drain(resp.Body)
	if t.retried != nil {
		t.retried()
	}
	return t.next.RoundTrip(withAuthorization(req, h))
}

// withAuthorization returns a shallow copy of req with its own header map,
// as a RoundTripper must not change the request it was given. Only the map
// is copied (the proxy builds a new one per request already): the values
// are shared and never changed.
func withAuthorization(req *http.Request, h *headerFor) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Header = make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		r.Header[k] = v
	}
	r.Header["Authorization"] = h.value
	return r
}

// drain reads a little of a body that is thrown away, so that the
// connection can be reused, then closes it.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
	_ = body.Close()
}

// headErrorAsGET asks again with GET when the upstream answers a HEAD with
// a client error: the gateway answers with the error's code and that code's
// message, and the HEAD answer must carry the Content-Length of the body a
// GET gets, which only the upstream's error body tells. The GET's answer
// stands in for the HEAD's (with the HEAD request, so it is written without
// a body). Credential failures (401, 403) are not asked again: their answer
// does not depend on the body.
type headErrorAsGET struct{ next http.RoundTripper }

func (t headErrorAsGET) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodHead || resp.StatusCode < 400 || resp.StatusCode >= 500 ||
		resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return resp, err
	}
	get := req.Clone(req.Context())
	get.Method = http.MethodGet
	gresp, gerr := t.next.RoundTrip(get)
	if gerr != nil || gresp.StatusCode != resp.StatusCode {
		// The upstream changed its mind meanwhile: the HEAD's answer it is.
		if gerr == nil {
			drain(gresp.Body)
		}
		return resp, nil
	}
	drain(resp.Body)
	gresp.Request = req
	return gresp, nil
}

// maxRedirects bounds the redirects followed for one blob.
const maxRedirects = 5

// redirectFollower follows the redirects the upstream answers blob requests
// with (ECR: a 307 to a presigned S3 URL) for gateways whose clients can
// reach only the gateway; the forwarder sends it blob requests only. The
// redirected request goes out through plain,
// which holds no credential, and carries only the headers that make sense
// for fetching bytes: never the upstream's Authorization.
type redirectFollower struct {
	next  http.RoundTripper // the upstream, with its credential
	plain http.RoundTripper // anything else
}

// forwardedToRedirect are the request headers a redirected blob request
// keeps.
var forwardedToRedirect = []string{"Range", "If-Range", "If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since", "User-Agent"}

// errTooManyRedirects ends a redirect loop.
var errTooManyRedirects = errors.New("too many upstream redirects")

func (t *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || !isRedirect(resp.StatusCode) {
		return resp, err
	}
	from := req
	for range maxRedirects {
		loc, err := resp.Location()
		drain(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("upstream redirect: %w", err)
		}
		if loc.Scheme != "http" && loc.Scheme != "https" {
			return nil, fmt.Errorf("upstream redirect to scheme %q", loc.Scheme)
		}
		next, err := redirectRequest(from, loc)
		if err != nil {
			return nil, err
		}
		resp, err = t.plain.RoundTrip(next)
		if err != nil {
			return nil, err
		}
		if req.Method == http.MethodHead && !isRedirect(resp.StatusCode) {
			resp = headFromRangedGET(resp)
		}
		if !isRedirect(resp.StatusCode) {
			// Keep the upstream request, so that the response is
			// rewritten as an answer for the path the client asked for.
			resp.Request = req
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
				if _, ok := resp.Header["Docker-Content-Digest"]; !ok {
					// The storage host does not know it; clients may
					// check it. It is the last segment of the blob's
					// path (…/blobs/<digest>).
					resp.Header.Set("Docker-Content-Digest", path.Base(req.URL.Path))
				}
			}
			return resp, nil
		}
		// Keep the original request for the answer; go on from the hop.
		from = next
	}
	drain(resp.Body)
	return nil, errTooManyRedirects
}

// redirectRequest is the request for the redirect target. A HEAD becomes a
// GET of the first byte: a presigned S3 URL is signed for one method, GET,
// and answers a HEAD with 403.
func redirectRequest(from *http.Request, to *url.URL) (*http.Request, error) {
	method := from.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(from.Context(), method, to.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("upstream redirect: %w", err)
	}
	for _, k := range forwardedToRedirect {
		if v := from.Header[k]; len(v) > 0 {
			r.Header[k] = v
		}
	}
	if from.Method == http.MethodHead {
		r.Header.Set("Range", "bytes=0-0")
		delete(r.Header, "If-Range")
	}
	return r, nil
}

// headFromRangedGET turns the answer to a one-byte GET into the answer to a
// HEAD of the whole blob: 200 and the full length (from Content-Range, or
// Content-Length when the range was ignored), no body.
func headFromRangedGET(resp *http.Response) *http.Response {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		total := int64(-1)
		if cr := resp.Header.Get("Content-Range"); cr != "" {
			if i := strings.LastIndexByte(cr, '/'); i >= 0 {
				if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
					total = n
				}
			}
		}
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		resp.Header.Del("Content-Range")
		if total >= 0 {
			resp.ContentLength = total
			resp.Header.Set("Content-Length", strconv.FormatInt(total, 10))
		} else {
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
	case http.StatusOK:
	default:
		return resp
	}
	drain(resp.Body)
	resp.Body = http.NoBody
	return resp
}

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// upstreamError says what went wrong talking to the upstream, so the proxy's
// error handler can pick the status.
func upstreamStatus(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, errNoCredential):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
