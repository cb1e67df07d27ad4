package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/acme/registry-gateway/internal/httpx"
)

// bufferPool lends ReverseProxy its 32 KiB copy buffers, so that a thousand
// concurrent blob streams cost a thousand buffers at most, reused. It pools
// array pointers: converting the returned slice back to one allocates
// nothing, where pooling *[]byte would allocate a slice header per Put.
type bufferPool struct{ p sync.Pool }

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
	auth     *authHeader
	errs     httpx.Handler
}

// Hop-independent request headers that must never reach the upstream: the
// client's own credential is for the gateway only.
var droppedRequestHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// rewrite points the request at the upstream: the checked path with the
// prefix, the query as it came, and the upstream credential in place of the
// client's Authorization.
func (p *upstreamProxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	out.URL.Scheme = p.upstream.Scheme
	out.URL.Host = p.upstream.Host
	if p.prefix != "" {
		// The path was checked by ParseRoute: canonical, nothing escaped.
		out.URL.Path = "/v2/" + p.prefix + pr.In.URL.Path[len("/v2/"):]
	}
	out.URL.RawPath = ""
	out.Host = ""
	for _, k := range droppedRequestHeaders {
		delete(out.Header, k)
	}
	// On failure the credential transport tries again and reports it.
	if h, err := p.auth.get(out.Context()); err == nil {
		out.Header["Authorization"] = h.value
	}
}

// errUpstreamRefused is an upstream 401/403 the credential retry could not
// cure: the gateway's own credential or permissions are at fault, not the
// client's, and passing the upstream's Basic challenge on would only
// confuse the client.
var errUpstreamRefused = errors.New("upstream refused the gateway's credential")

// maxTagsListBody bounds a tags/list answer rewritten for the prefix.
const maxTagsListBody = 16 << 20

var apiVersionValue = []string{"registry/2.0"}

// modifyResponse turns the upstream's answer into the gateway's: upstream
// names and URLs back to the client's, and upstream auth failures and
// server errors into the gateway's errors.
func (p *upstreamProxy) modifyResponse(resp *http.Response) error {
	h := resp.Header
	delete(h, "Www-Authenticate")
	delete(h, "Set-Cookie")
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		drain(resp.Body)
		return fmt.Errorf("%w: %s", errUpstreamRefused, resp.Status)
	case resp.StatusCode >= 500:
		drain(resp.Body)
		return &upstreamStatusError{status: resp.StatusCode}
	case resp.StatusCode >= 400 && resp.Request.Method != http.MethodHead:
		return scrubError(resp)
	}
	if _, ok := h["Docker-Distribution-Api-Version"]; !ok {
		h["Docker-Distribution-Api-Version"] = apiVersionValue
	}
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", p.clientURL(loc))
	}
	if link := h.Get("Link"); link != "" {
		h.Set("Link", p.rewriteLink(link))
	}
	if p.prefix != "" && resp.StatusCode == http.StatusOK && strings.HasSuffix(resp.Request.URL.Path, "/tags/list") &&
		resp.Request.Method == http.MethodGet {
		return p.rewriteTagsList(resp)
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
	if u.Host != "" && (u.Host != p.upstream.Host || u.Scheme != p.upstream.Scheme) {
		return raw
	}
	if rest, ok := strings.CutPrefix(u.Path, "/v2/"+p.prefix); ok {
		u.Path = "/v2/" + rest
		u.RawPath = ""
	}
	u.Scheme, u.Host, u.User = "", "", nil
	return u.String()
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
func (p *upstreamProxy) rewriteTagsList(resp *http.Response) error {
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
	var name string
	if err := json.Unmarshal(body["name"], &name); err == nil {
		if client, ok := strings.CutPrefix(name, p.prefix); ok {
			body["name"], _ = json.Marshal(client)
		}
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

// scrubError keeps the code and message of an upstream error answer (404
// MANIFEST_UNKNOWN, 429 TOOMANYREQUESTS, …) and drops its detail, which
// names upstream repositories with their prefix, registry IDs and hosts
// that are none of the client's business.
func scrubError(resp *http.Response) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read upstream error: %w", err)
	}
	var in struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	type errorJSON struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	out := struct {
		Errors []errorJSON `json:"errors"`
	}{Errors: []errorJSON{}}
	if json.Unmarshal(data, &in) == nil {
		for _, e := range in.Errors {
			out.Errors = append(out.Errors, errorJSON{Code: e.Code, Message: e.Message})
		}
	}
	if len(out.Errors) == 0 {
		out.Errors = append(out.Errors, errorJSON{Code: httpx.CodeUnknown, Message: strings.ToLower(http.StatusText(resp.StatusCode))})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/json")
	return nil
}

// errorHandler answers transport failures and modifyResponse's refusals
// with registry JSON errors; the cause goes to the log only.
func (p *upstreamProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var e *httpx.Error
	var se *upstreamStatusError
	switch {
	case errors.As(err, &e):
	case errors.Is(err, errNoCredential):
		e = &httpx.Error{Status: http.StatusServiceUnavailable, Code: httpx.CodeUnavailable, Message: "no upstream credential", Err: err}
	case errors.Is(err, errUpstreamRefused):
		e = &httpx.Error{Status: http.StatusBadGateway, Code: httpx.CodeUnavailable, Message: "upstream refused the gateway", Err: err}
	case errors.As(err, &se):
		e = &httpx.Error{Status: http.StatusBadGateway, Code: httpx.CodeUnavailable, Message: "upstream error", Err: err}
	default:
		status := upstreamStatus(err)
		msg := "upstream unavailable"
		if status == http.StatusGatewayTimeout {
			msg = "upstream timed out"
		}
		e = &httpx.Error{Status: status, Code: httpx.CodeUnavailable, Message: msg, Err: err}
	}
	w.Header()["Docker-Distribution-Api-Version"] = apiVersionValue
	p.errs.WriteError(w, r, e)
}
