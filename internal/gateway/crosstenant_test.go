package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
	"github.com/acme/registry-gateway/pkg/auth"
)

// TestCrossTenantInvariant: two customers, A licensed for the stable and
// beta channels and B for stable only, pull concurrently through the
// gateway's real handler on a real listener from an upstream that
// misbehaves at random: stale answers of other requests after its bodies
// (in the same write, and in a later packet with the body's last byte),
// HEAD answers with a body and another answer, a status 000 before
// another answer, and answers on idle connections. Every
// answer of that upstream names the request it answers. No client may ever
// get a body (or a digest) of another request, B nothing of beta, and the
// manifest cache (tag_ttl on) nothing stored under a tag that names
// another; a 502 is all a misbehaving answer may cost.
func TestCrossTenantInvariant(t *testing.T) {
	t.Parallel()
	const (
		workers  = 8
		rounds   = 5
		perRound = 10 // requests per worker and round: 8 × 50 in all
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var (
		rmu  sync.Mutex
		rng  = rand.New(rand.NewPCG(seed, 0x5eed))
		last = "/v2/" + testPrefix + "beta/app/manifests/first"
	)
	// pick is a random behaviour for an answer, and the path the upstream
	// answered before this one (on any connection): the stale answer.
	pick := func(path string) (n int, stale string) {
		rmu.Lock()
		defer rmu.Unlock()
		n, stale, last = rng.IntN(10), last, path
		return n, stale
	}
	// Each answer goes out in as few writes as it says: stray bytes then
	// reach the gateway no later than the end of the answer they follow.
	// Bytes that arrive only after the gateway sent its next request on
	// the connection are beyond any HTTP/1.1 client (see
	// UpstreamTransport), and not sent here.
	one := func(c *rawConn, parts ...[]byte) { c.write(bytes.Join(parts, nil)) }
	up := newRawUpstream(t, false, func(c *rawConn, req *http.Request) bool {
		path := req.URL.Path
		body := namedManifest(path)
		n, stale := pick(path)
		if req.Method == http.MethodHead {
			if n < 5 {
				c.write(manifestHead(body, len(body), ""))
			} else {
				// A HEAD answered with its body, and another answer.
				one(c, manifestHead(body, len(body), ""), body, manifestAnswer(stale))
			}
			return true
		}
		switch {
		case n < 4:
			c.write(manifestAnswer(path))
		case n < 6:
			// Another request's answer after the body, in the same write.
			one(c, manifestAnswer(path), manifestAnswer(stale))
		case n < 8:
			// The same in a later packet, with the body's last byte.
			answer := manifestAnswer(path)
			c.write(answer[:len(answer)-1])
			one(c, answer[len(answer)-1:], manifestAnswer(stale))
		default:
			// A status below 100, taken for an informational one,
			// would serve the answer behind it.
			one(c, []byte("HTTP/1.1 000 OK\r\n\r\n"), manifestAnswer(stale))
		}
		return true
	})
	ttl := time.Minute
	e := newEnv(t, http.NotFoundHandler(), func(c *Config, o *Options) {
		c.Upstream.URL = up.url
		c.ManifestCache.TagTTL = &ttl
		off := false
		c.AccessLog = &off
	})
	addr := testutil.Serve(t, e.gw.Serve)

	type customer struct {
		name     string
		token    string
		channels []string
	}
	tokenFor := func(subject string, channels ...string) string {
		c := e.claims()
		c.Subject = subject
		c.Access = nil
		for _, ch := range channels {
			c.Access = append(c.Access, auth.ResourceActions{Type: "repository", Name: ch + "/app", Actions: []string{"pull"}})
		}
		return e.sign(c)
	}
	customers := []customer{
		{"A", tokenFor("a@example.com", "stable", "beta"), []string{"stable", "beta"}},
		{"B", tokenFor("b@example.com", "stable"), []string{"stable"}},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var (
		mu         sync.Mutex
		violations []string
		served     int
		failed     int
	)
	violate := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		} else if len(violations) == 20 {
			violations = append(violations, "…")
		}
	}
	// pull makes one request and checks its answer.
	pull := func(cu customer, method, channel, tag string) {
		path := "/v2/" + channel + "/app/manifests/" + tag
		own := namedManifest("/v2/" + testPrefix + channel + "/app/manifests/" + tag)
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+cu.token)
		req.Header.Set("Accept", testManifestType)
		resp, err := client.Do(req)
		if err != nil {
			violate("%s %s %s: %v", cu.name, method, path, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			violate("%s %s %s: body: %v", cu.name, method, path, err)
		case resp.StatusCode == http.StatusBadGateway:
			mu.Lock()
			failed++
			mu.Unlock()
			if bytes.Contains(body, []byte("request")) {
				violate("%s %s %s: 502 with %q", cu.name, method, path, body)
			}
		case resp.StatusCode != http.StatusOK:
			violate("%s %s %s: %d %q", cu.name, method, path, resp.StatusCode, body)
		default:
			mu.Lock()
			served++
			mu.Unlock()
			want := own
			if method == http.MethodHead {
				want = nil
			}
			if !bytes.Equal(body, want) {
				violate("%s %s %s: got another request's answer %q", cu.name, method, path, body)
			}
			if d := resp.Header.Get("Docker-Content-Digest"); d != sha256Digest(own) {
				violate("%s %s %s: digest %s is another request's", cu.name, method, path, d)
			}
		}
		if cu.name == "B" && (bytes.Contains(body, []byte("/beta/")) || strings.Contains(fmt.Sprint(resp.Header), "beta")) {
			violate("B %s %s: got something of beta: %v %q", method, path, resp.Header, body)
		}
	}

	repeated := []string{"r0", "r1", "r2", "r3"}
	for round := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(round*workers+w)))
				for i := range perRound {
					cu := customers[r.IntN(len(customers))]
					channel := cu.channels[r.IntN(len(cu.channels))]
					tag := fmt.Sprintf("u-%d-%d-%d", round, w, i)
					if r.IntN(3) == 0 {
						// Tags many requests share: cached (tag_ttl).
						tag = repeated[r.IntN(len(repeated))]
					}
					method := http.MethodGet
					if r.IntN(5) == 0 {
						method = http.MethodHead
					}
					pull(cu, method, channel, tag)
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			violate("out of time in round %d", round)
			break
		}
		// Nothing in flight: every upstream connection is idle. Each gets
		// the answer it gave last once more, which the gateway must drop
		// with the connection before anyone asks again.
		injected := up.injectIdle(manifestAnswer)
		if kept := up.waitDropped(injected, 2*time.Second); len(kept) > 0 {
			violate("round %d: %d of %d idle connections kept after unsolicited bytes", round, len(kept), len(injected))
		}
	}

	// The cache holds, under each tag, that tag's manifest only.
	c := e.gw.manifests
	c.mu.Lock()
	cached := 0
	for k, entry := range c.entries.entries {
		cached++
		if want := namedManifest("/v2/" + testPrefix + k.name + "/manifests/" + k.ref); !bytes.Equal(entry.val.body, want) {
			violate("the cache holds under %s:%s %q", k.name, k.ref, entry.val.body)
		}
	}
	c.mu.Unlock()

	t.Logf("%d answers served, %d refused (502), %d manifests cached, %v cache hits", served, failed, cached, counterValue(c.hits))
	for _, v := range violations {
		t.Error(v)
	}
	if served < workers*rounds*perRound/2 || cached == 0 || counterValue(c.hits) == 0 {
		t.Errorf("the run proves little: %d served, %d cached, %v cache hits", served, cached, counterValue(c.hits))
	}
}
