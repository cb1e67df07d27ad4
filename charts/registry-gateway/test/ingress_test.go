package charttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Pod addresses of the end-to-end test: inside 10.0.0.0/8, one of the
// chart's default trustedProxies ranges, added to the loopback interface
// for the test's length. The ingress controller's connections to the
// gateway come from ingressAddr; the gateway listens on gatewayAddr, the
// token service on tokenAddr, and the gateway's connections to it come from
// tokenAddr too (Linux picks a local destination's own address as the
// source).
const (
	ingressAddr = "10.250.0.10"
	gatewayAddr = "10.250.0.20"
	tokenAddr   = "10.250.0.30"
)

// Customers' addresses as the ingress controller sees them: any loopback
// address is local on Linux, and none is in trustedProxies.
const (
	attackerAddr = "127.0.0.2"
	customerAddr = "127.0.0.3"
)

// The security review's case, run for real with the chart's default
// configurations and the Ingress on: behind the ingress controller, one
// client failing logins must not lock every customer out of `docker login`
// (the token service limits failed logins per client address, so it has to
// see each client's own). The rendered ConfigMaps run in the real
// bin/tokenserver and bin/gateway, with only their listen addresses, file
// paths, upstream and licence API URL rewritten: trusted_proxies are the
// chart's. A reverse proxy stands in for ingress-nginx, appending the
// client's address to X-Forwarded-For and connecting from a pod address.
func TestIngressKeepsFailedLoginsPerClient(t *testing.T) {
	h := helm(t)
	addPodAddrs(t, ingressAddr, gatewayAddr, tokenAddr)

	m := mustRender(t, h, "", "--set", "ingress.enabled=true")
	if ing := m.ingresses[gwName]; ing == nil {
		t.Fatal("no Ingress rendered")
	}
	ts, gw := config(t, m, "tokenserver"), config(t, m, "gateway")
	// This test is about the defaults; TestTrustedProxies checks the value.
	t.Logf("rendered trusted_proxies: token service %v, gateway %v", ts["trusted_proxies"], gw["trusted_proxies"])
	dir := t.TempDir()

	// The vendor's licence API: one customer, named by the answer
	// (licenses.http.username_path).
	const user, apiToken = "alice@example.com", "alice-api-token"
	licences := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"objects":[{"release":"stable"}],"user":{"email":"`+user+`"}}`)
	}))
	t.Cleanup(licences.Close)
	// The upstream registry: the gateway needs one configured; /token and
	// /v2/ never reach it.
	upstream := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(upstream.Close)

	if out, err := run(t, filepath.Join(bins, "tokenserver"), "keygen", "-dir", dir); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	tsPort, tsMetrics := freePort(t, tokenAddr), freePort(t, tokenAddr)
	ts["listen"] = net.JoinHostPort(tokenAddr, tsPort)
	setMetricsListen(ts, net.JoinHostPort(tokenAddr, tsMetrics))
	ts["signing_key"] = filepath.Join(dir, "token.key")
	lic := ts["licenses"].(map[string]any)
	lic["http"].(map[string]any)["url"] = licences.URL + "/api/v1/license"
	tsURL := "http://" + net.JoinHostPort(tokenAddr, tsPort)

	gwPort, gwMetrics := freePort(t, gatewayAddr), freePort(t, gatewayAddr)
	gw["listen"] = net.JoinHostPort(gatewayAddr, gwPort)
	setMetricsListen(gw, net.JoinHostPort(gatewayAddr, gwMetrics))
	gw["token_endpoint"] = tsURL + "/token"
	gw["keys"] = map[string]any{"jwks_url": tsURL + "/.well-known/jwks.json"}
	password := filepath.Join(dir, "upstream.password")
	if err := os.WriteFile(password, []byte("upstream-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw["upstream"] = map[string]any{"url": upstream.URL,
		"static": map[string]any{"username": "gateway", "password_file": password}}
	gwURL := "http://" + net.JoinHostPort(gatewayAddr, gwPort)

	startService(t, "tokenserver", tsURL, writeConfig(t, dir, "tokenserver", ts), "serve")
	startService(t, "gateway", gwURL, writeConfig(t, dir, "gateway", gw))

	// The ingress controller: ingress-nginx appends the address a request
	// came from to X-Forwarded-For and connects from its pod's address.
	target, _ := url.Parse(gwURL)
	ingress := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
		},
		Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(ingressAddr)}, Timeout: 5 * time.Second,
		}).DialContext},
	})
	t.Cleanup(ingress.Close)

	attacker, customer := clientFrom(attackerAddr), clientFrom(customerAddr)
	tokenURL := func(account, scope string) string {
		q := url.Values{"service": {"registry.example.com"}, "account": {account}}
		if scope != "" {
			q.Set("scope", scope)
		}
		return ingress.URL + "/token?" + q.Encode()
	}

	// One client fails logins in other customers' names (a fresh name each
	// time, so only the per-address budget applies), and forges
	// X-Forwarded-For to try to pass as someone else. It must be limited
	// after its 30 failures.
	failed, limited := 0, false
	for i := range 60 {
		name := fmt.Sprintf("victim%d@example.com", i)
		status, _ := get(t, attacker, tokenURL(name, ""), func(r *http.Request) {
			r.SetBasicAuth(name, fmt.Sprintf("wrong-token-%d", i))
			r.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		})
		if status == http.StatusTooManyRequests {
			limited = true
			break
		}
		if status != http.StatusUnauthorized {
			t.Fatalf("failed login %d: status %d, want 401", i, status)
		}
		failed++
	}
	if !limited || failed < 30 {
		t.Fatalf("the failing client: %d failed logins, then 429: %v; want 429 after 30", failed, limited)
	}

	// Another customer logs in as docker does, then pulls with the token.
	status, body := get(t, customer, tokenURL(user, "repository:stable/app:pull"), func(r *http.Request) {
		r.SetBasicAuth(user, apiToken)
	})
	if status != http.StatusOK {
		t.Fatalf("another client's GET /token with good credentials after the failing client's %d: status %d, want 200 (all clients share one failed-login budget)\n%s", failed, status, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token answer: %v %s", err, body)
	}
	if status, body := get(t, customer, ingress.URL+"/v2/", func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+tok.Token)
	}); status != http.StatusOK {
		t.Errorf("GET /v2/ with the token: %d %s", status, body)
	}
	// And the failing client is still refused, with good credentials too:
	// the budget is its address's.
	if status, _ := get(t, attacker, tokenURL(user, ""), func(r *http.Request) {
		r.SetBasicAuth(user, apiToken)
	}); status != http.StatusTooManyRequests {
		t.Errorf("the failing client's next login: %d, want 429", status)
	}

	// Metrics are on their own port, not on the customer one the Ingress
	// routes to.
	if status, body := get(t, customer, ingress.URL+"/metrics", nil); status == http.StatusOK || bytes.Contains(body, []byte("gateway_requests_total")) {
		t.Errorf("GET /metrics through the ingress: %d\n%s", status, body)
	}
	for _, c := range []struct{ url, want string }{
		{"http://" + net.JoinHostPort(gatewayAddr, gwMetrics) + "/metrics", "gateway_requests_total"},
		{"http://" + net.JoinHostPort(tokenAddr, tsMetrics) + "/metrics", `outcome="rate_limited"`},
	} {
		if status, body := get(t, &http.Client{Timeout: 10 * time.Second}, c.url, nil); status != http.StatusOK || !bytes.Contains(body, []byte(c.want)) {
			t.Errorf("GET %s: %d, lacks %s", c.url, status, c.want)
		}
	}
}

// freePort returns a port free on addr now.
func freePort(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// setMetricsListen moves a rendered metrics listener, if any.
func setMetricsListen(cfg map[string]any, addr string) {
	if m, ok := cfg["metrics"].(map[string]any); ok && m["listen"] != nil {
		m["listen"] = addr
	}
}

func writeConfig(t *testing.T, dir, service string, cfg map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, service+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// lockedBuffer collects a process's output, written from exec's copying
// goroutines and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startService runs bin/<name> [sub] -config path and waits (20 s at
// most) until base/readyz answers 200. It is stopped with SIGTERM when the
// test ends, and killed 10 s later; its output is logged if the test failed.
func startService(t *testing.T, name, base, path string, sub ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, name), append(sub, "-config", path)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the process has ended, waitErr set before.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out)
		}
	})
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("%s exited: %v\n%s", name, waitErr, out)
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 20s (last: %v)\n%s", name, err, out)
		}
		time.Sleep(50 * time.Millisecond) // polling readiness, not ordering
	}
}

// clientFrom is an HTTP client whose connections come from addr, a new
// connection for each request (customers are distinct machines).
func clientFrom(addr string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 5 * time.Second,
		}).DialContext,
	}}
}

// get sends a GET, edited by edit, and returns the status and at most 1 MiB
// of the body.
func get(t *testing.T, c *http.Client, u string, edit func(*http.Request)) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: body: %v", u, err)
	}
	return resp.StatusCode, body
}
