package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type seenToken struct {
	Method, Path, Query, Body, Authorization, ForwardedFor string
}

func TestTokenForwarding(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []seenToken
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, seenToken{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Get("Authorization"), r.Header.Get("X-Forwarded-For")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"t","access_token":"t","expires_in":300}`)
	}))
	t.Cleanup(ts.Close)
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.TokenEndpoint = ts.URL + "/auth/token" })

	h := http.Header{"Authorization": {basic("alice@example.com", "api-token")}}
	resp := e.do("GET", "/token?service=registry.example.com&scope=repository:stable/app:pull&scope=registry:catalog:*", h)
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"access_token"`) {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/token", strings.NewReader("grant_type=password&username=alice&password=x&service=s"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: %d", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("token service saw %d requests", len(seen))
	}
	get, post := seen[0], seen[1]
	if get.Method != "GET" || get.Path != "/auth/token" || get.Authorization != basic("alice@example.com", "api-token") ||
		get.Query != "service=registry.example.com&scope=repository:stable/app:pull&scope=registry:catalog:*" || get.ForwardedFor == "" {
		t.Errorf("GET forwarded as %+v", get)
	}
	if post.Method != "POST" || post.Body != "grant_type=password&username=alice&password=x&service=s" {
		t.Errorf("POST forwarded as %+v", post)
	}
	if e.upstream.count() != 0 {
		t.Error("token request went to the upstream")
	}
}

// TestTokenForwardedFor: the token service limits failed logins per client
// address, so the X-Forwarded-For it gets must name the real customer
// behind a trusted load balancer and never what a client wrote.
func TestTokenForwardedFor(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- strings.Join(r.Header.Values("X-Forwarded-For"), " | ")
	}))
	t.Cleanup(ts.Close)
	for _, tt := range []struct {
		name    string
		trusted []string
		xff     []string
		want    string
		remote  string // in the access log
	}{
		{"no trusted proxies: forged header replaced", nil, []string{"203.0.113.7"}, "127.0.0.1", "127.0.0.1"},
		{"untrusted peer: forged header replaced", []string{"10.0.0.0/8"}, []string{"203.0.113.7"}, "127.0.0.1", "127.0.0.1"},
		{"trusted balancer: chain kept, peer appended", []string{"127.0.0.1/32"}, []string{"6.6.6.6, 203.0.113.7"}, "6.6.6.6, 203.0.113.7, 127.0.0.1", "203.0.113.7"},
		{"trusted balancer, several headers", []string{"127.0.0.1"}, []string{"6.6.6.6", "203.0.113.7"}, "6.6.6.6, 203.0.113.7, 127.0.0.1", "203.0.113.7"},
		{"trusted peer without header", []string{"127.0.0.1"}, nil, "127.0.0.1", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) {
				c.TokenEndpoint = ts.URL + "/token"
				c.TrustedProxies = tt.trusted
			})
			resp := e.do("GET", "/token", http.Header{"X-Forwarded-For": tt.xff})
			resp.Body.Close()
			if got := <-seen; got != tt.want {
				t.Errorf("token service saw X-Forwarded-For %q, want %q", got, tt.want)
			}
			// The access log names the client as the token service will.
			if !e.logs.WaitFor(`"remote":"`+tt.remote+`"`, 5*time.Second) {
				t.Errorf("access log does not name the client %s: %s", tt.remote, e.logs)
			}
		})
	}
}

func TestTokenForwardingLimits(t *testing.T) {
	t.Parallel()
	hits := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(ts.Close)
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.TokenEndpoint = ts.URL + "/token" })

	req, _ := http.NewRequest("POST", e.srv.URL+"/token", strings.NewReader(strings.Repeat("a", maxTokenRequestBody+1)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d", resp.StatusCode)
	}
	for _, m := range []string{"PUT", "DELETE"} {
		if resp := e.do(m, "/token", nil); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, resp.StatusCode)
		}
	}
	if hits != 0 {
		t.Errorf("token service hit %d times", hits)
	}
	ts.Close()
	if resp := e.do("GET", "/token", nil); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("token service down: %d", resp.StatusCode)
	}
}

// TestTokenForwardingErrors: what a client gets when the token service
// fails it, each a registry JSON error, and nothing of the token service's
// own hop-by-hop headers; its own answers (a 401 and its challenge) pass
// as they are.
func TestTokenForwardingErrors(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("case") {
		case "slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "refused":
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.Header().Set("Connection", "X-Internal")
			w.Header().Set("X-Internal", "secret-hop")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		case "headers":
			w.Header().Set("Content-Type", "text/plain")
			for _, k := range []string{"Connection", "X-Hop", "Te", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "User-Agent"} {
				_, _ = io.WriteString(w, k+"="+strings.Join(r.Header.Values(k), "|")+"\n")
			}
		default:
			_, _ = io.Copy(io.Discard, r.Body)
		}
	}))
	t.Cleanup(func() { close(release); ts.Close() })
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) {
		c.TokenEndpoint = ts.URL + "/token"
		c.Upstream.ResponseHeaderTimeout = 100 * time.Millisecond
	})

	resp := e.do("GET", "/token?case=slow", nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, `"UNAVAILABLE"`) ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("slow token service: %d %s", resp.StatusCode, body)
	}

	resp = e.do("GET", "/token?case=refused", nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "UNAUTHORIZED") ||
		resp.Header.Get("WWW-Authenticate") != `Basic realm="registry"` || resp.Header.Get("X-Internal") != "" {
		t.Errorf("token service's 401: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	resp = e.do("GET", "/token?case=headers", http.Header{
		"Connection": {"X-Hop"}, "X-Hop": {"1"}, "Te": {"trailers"}, "Forwarded": {"for=6.6.6.6"},
		"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}, "User-Agent": {"docker/27.0"},
	})
	want := "Connection=\nX-Hop=\nTe=\nX-Forwarded-For=127.0.0.1\nX-Forwarded-Host=" + strings.TrimPrefix(e.srv.URL, "http://") +
		"\nX-Forwarded-Proto=http\nForwarded=\nUser-Agent=docker/27.0\n"
	if body := readBody(t, resp); body != want {
		t.Errorf("token service saw headers:\n%s\nwant:\n%s", body, want)
	}

	// A chunked body (no Content-Length to refuse it by) is cut at the
	// limit: 413, not a failure of the token service.
	req, _ := http.NewRequest("POST", e.srv.URL+"/token", io.MultiReader(strings.NewReader(strings.Repeat("a", maxTokenRequestBody+1))))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, r); r.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"errors"`) {
		t.Errorf("chunked big body: %d %s", r.StatusCode, body)
	}
}

// TestTokenServiceBadAnswers: a token service answer that breaks HTTP/1.1
// (a status outside 200–599, a cut in its headers) is a 502 registry JSON
// error, its cause on the request's one access line and nowhere else; a
// client that hangs up while the token service thinks is logged as such
// (499), not as a failure of the token service.
func TestTokenServiceBadAnswers(t *testing.T) {
	t.Parallel()
	asked := make(chan struct{}, 1)
	ts := newRawUpstream(t, false, func(c *rawConn, req *http.Request) bool {
		switch req.URL.Query().Get("case") {
		case "000":
			c.write([]byte("HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\n{}"))
		case "600":
			c.write([]byte("HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\n{}"))
		case "cut":
			c.write([]byte("HTTP/1.1 200 OK\r\nContent-Ty"))
			return false
		case "gone":
			// Never answers: the client leaves first.
			asked <- struct{}{}
			_, _ = c.Read(make([]byte, 1))
			return false
		}
		return true
	})
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.TokenEndpoint = ts.url + "/token" })
	for _, tc := range []string{"000", "600", "cut"} {
		resp := e.do("GET", "/token?case="+tc, nil)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusBadGateway || errorMessage(t, body) != "token service unavailable" {
			t.Errorf("%s: %d %s", tc, resp.StatusCode, body)
		}
		line := `"path":"/token","route":"token","status":502`
		if !e.logs.WaitFor(line, 5*time.Second) {
			t.Fatalf("%s: no access line with the failure:\n%s", tc, e.logs)
		}
		if n := strings.Count(e.logs.String(), "token service unavailable"); n != 1 {
			t.Errorf("%s: the failure is logged %d times:\n%s", tc, n, e.logs)
		}
		e.logs.Reset()
	}

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/token?case=gone", nil)
	cancelOnArrival(t, req, asked, cancel)
	if !e.logs.WaitFor(`"status":499`, 5*time.Second) {
		t.Errorf("a client gone is not logged as 499:\n%s", e.logs)
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("a client gone is logged as an error:\n%s", e.logs)
	}
}
