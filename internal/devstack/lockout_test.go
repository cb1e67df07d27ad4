package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address local (Linux routes all of 127.0.0.0/8 to lo), so that one test
// can play several customers with distinct addresses.
func clientFrom(t *testing.T, local string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// login is what `docker login` sends: GET /token with Basic credentials and
// no scope. xff, when set, is an X-Forwarded-For the client forges.
func login(t *testing.T, c *http.Client, base string, st *Stack, user, password, xff string) int {
	t.Helper()
	q := url.Values{"service": {st.Service}, "account": {user}, "client_id": {"docker"}}
	req, err := http.NewRequest("GET", base+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLoginLockoutImpossible runs the real token service behind the real
// gateway and has an attacker fail logins in the customer's name, with an
// X-Forwarded-For naming the customer's address, until the token service
// throttles the attacker; the customer's own login must still succeed and
// be audited with the customer's address. Both with a load balancer the
// gateway trusts (trusted_proxies) and with clients talking to the gateway
// directly (no trusted_proxies).
func TestLoginLockoutImpossible(t *testing.T) {
	const attacker, customer = "127.0.0.2", "127.0.0.3"
	for _, tc := range []struct {
		name     string
		balancer bool
		// ports: the balancer writes X-Forwarded-For as IP:port, the
		// peer's RemoteAddr, in place of what the client sent (as
		// several balancers do).
		ports bool
	}{
		{"behind a trusted load balancer", true, false},
		{"behind a balancer that writes IP:port", true, true},
		{"clients direct, no trusted_proxies", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDeploy(t)
			if tc.balancer {
				edit(t, dir+"/deploy/gateway.yaml", "log_level: info", "log_level: info\ntrusted_proxies: [127.0.0.1/32]")
			}
			logs := &testutil.SyncBuffer{}
			o := testOptions(dir)
			o.NoSeed = true
			o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			st, err := Start(ctx, o)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cancel()
				if err := st.Wait(); err != nil {
					t.Errorf("stack stopped with %v", err)
				}
			})
			base := st.GatewayURL
			if tc.balancer {
				// A load balancer as they are: it appends the peer to
				// X-Forwarded-For and connects to the gateway from
				// 127.0.0.1.
				target, _ := url.Parse(st.GatewayURL)
				proxy := httputil.NewSingleHostReverseProxy(target)
				if tc.ports {
					proxy = &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
						pr.SetURL(target)
						pr.Out.Header.Set("X-Forwarded-For", pr.In.RemoteAddr)
					}}
				}
				lb := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go func() { _ = lb.Serve(ln) }()
				t.Cleanup(func() { lb.Close() })
				base = "http://" + ln.Addr().String()
			}

			evil, good := clientFrom(t, attacker), clientFrom(t, customer)
			throttled := false
			for i := range 60 {
				code := login(t, evil, base, st, DemoUser, fmt.Sprintf("wrong-%d", i), customer)
				if code == http.StatusTooManyRequests {
					throttled = true
					break
				}
				if code != http.StatusUnauthorized {
					t.Fatalf("attacker's login %d: status %d", i, code)
				}
			}
			if !throttled {
				t.Fatal("the attacker was never throttled: the limiter is not in the path")
			}
			if code := login(t, good, base, st, DemoUser, DemoToken, ""); code != http.StatusOK {
				t.Fatalf("customer's login after the attack: status %d, want 200", code)
			}
			// The token service saw the customer's own address. Its line
			// is written just after the answer: wait for it.
			audit := func() string {
				last := ""
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, `"component":"tokenserver"`) && strings.Contains(l, `"jti"`) {
						last = l
					}
				}
				return last
			}
			testutil.WaitFor(t, "an audit line naming the customer's address "+customer, 5*time.Second, func() bool {
				return strings.Contains(audit(), `"client":"`+customer+`"`)
			})
		})
	}
}
