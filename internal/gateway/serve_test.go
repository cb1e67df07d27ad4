package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServeAndShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.gw.Serve(ctx, ln) }()

	resp, err := noRedirects.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	if !strings.Contains(e.logs.String(), `"msg":"gateway listening"`) {
		t.Errorf("no listening line in the log: %s", e.logs)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
}

func TestRunListenFails(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	e := newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.Listen = busy.Addr().String() })
	if err := e.gw.Run(context.Background()); err == nil {
		t.Fatal("Run on a busy address: no error")
	}
}

// TestOneLogLinePerRequest: every request, failed or not, is one access
// line naming its route, the failure's code, message and cause on it, at
// INFO for what the client caused and ERROR for what the upstream did.
func TestOneLogLinePerRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newFakeRegistry())
	tok := bearer(e.token())
	for _, tt := range []struct {
		method, path string
		header       http.Header
		status       int
		level, route string
		want         string // on the line
	}{
		{"GET", "/v2/", nil, 401, "INFO", "base", `"code":"UNAUTHORIZED"`},
		{"GET", "/v2/stable/app/manifests/latest", tok, 200, "INFO", "manifest", `"bytes":`},
		{"GET", "/v2/stable/app/manifests/nope", tok, 404, "INFO", "manifest", `"remote":"127.0.0.1"`}, // the upstream's answer, passed on
		{"GET", "/v2/stable/app/manifests/boom", tok, 502, "ERROR", "manifest", `"error":"upstream answered 500"`},
		{"DELETE", "/v2/stable/app/blobs/" + dgst, tok, 405, "INFO", "blob", `"message":"this registry is read-only"`},
		{"GET", "/v2/Upper/manifests/v1", tok, 400, "INFO", "unknown", `"code":"NAME_INVALID"`},
		{"GET", "/nowhere", nil, 404, "INFO", "other", `"message":"unknown endpoint"`},
	} {
		resp := e.do(tt.method, tt.path, tt.header)
		readBody(t, resp)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			continue
		}
		// The line is written once the answer is out: wait for it.
		mark := `"method":"` + tt.method + `","path":"` + tt.path + `"`
		if !e.logs.WaitFor(mark, 5*time.Second) {
			t.Fatalf("%s %s not logged: %s", tt.method, tt.path, e.logs)
		}
		var lines []string
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, mark) {
				lines = append(lines, line)
			}
		}
		if len(lines) != 1 {
			t.Errorf("%s %s: %d lines, want 1:\n%s", tt.method, tt.path, len(lines), strings.Join(lines, ""))
			continue
		}
		l := lines[0]
		if !strings.Contains(l, `"level":"`+tt.level+`"`) || !strings.Contains(l, `"route":"`+tt.route+`"`) ||
			!strings.Contains(l, `"status":`+itoa(tt.status)) || !strings.Contains(l, tt.want) {
			t.Errorf("%s %s: line %s", tt.method, tt.path, l)
		}
	}
}

// TestWarnsBehindUntrustedProxy: requests with X-Forwarded-For from a
// loopback peer while trusted_proxies is empty (a balancer the gateway
// does not trust) are warned of once, naming the peer and the setting;
// with the balancer listed, not at all.
func TestWarnsBehindUntrustedProxy(t *testing.T) {
	t.Parallel()
	const warning = `"level":"WARN","msg":"X-Forwarded-For from a private or loopback address`
	xff := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
	e := newEnv(t, newFakeRegistry())
	for range 3 {
		readBody(t, e.do("GET", "/v2/", xff))
	}
	e.do("GET", "/healthz", nil)
	if !e.logs.WaitFor(`"path":"/healthz"`, 5*time.Second) {
		t.Fatalf("requests not logged: %s", e.logs)
	}
	logs := e.logs.String()
	if n := strings.Count(logs, warning); n != 1 {
		t.Fatalf("%d warnings, want 1: %s", n, logs)
	}
	for line := range strings.Lines(logs) {
		if strings.Contains(line, warning) && (!strings.Contains(line, `"peer":"127.0.0.1"`) || !strings.Contains(line, "trusted_proxies")) {
			t.Errorf("the warning names neither the peer nor trusted_proxies: %s", line)
		}
	}

	e = newEnv(t, newFakeRegistry(), func(c *Config, _ *Options) { c.TrustedProxies = []string{"127.0.0.1"} })
	readBody(t, e.do("GET", "/v2/", xff))
	e.do("GET", "/healthz", nil)
	if !e.logs.WaitFor(`"path":"/healthz"`, 5*time.Second) {
		t.Fatalf("requests not logged: %s", e.logs)
	}
	if strings.Contains(e.logs.String(), warning) {
		t.Errorf("warned with the proxy trusted: %s", e.logs)
	}
}
