package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileOutcome is what a client of the gateway must get for an upstream
// answer.
type hostileOutcome int

const (
	// ownAnswer: 200 and the manifest of the request, whole (a HEAD: no
	// body, its length).
	ownAnswer hostileOutcome = iota
	// emptyAnswer: the upstream's status (204, 304), no body.
	emptyAnswer
	// badGateway: a 502 registry JSON error, nothing of the upstream's.
	badGateway
	// cutAnswer: the connection ends before the declared length (before
	// the status line even, when the gateway had not flushed it yet).
	cutAnswer
)

// hostileCase is an upstream answer that breaks HTTP/1.1's framing, or
// strains it, and what the gateway's client must see of it.
type hostileCase struct {
	name   string
	method string
	header http.Header
	// answer writes the upstream's answer for path on c; false: the
	// upstream closes the connection after it.
	answer func(c *rawConn, path string) bool
	// later, when set, is written on the same connection once the client
	// has its answer: the connection is idle in the gateway's pool.
	later  func(path string) []byte
	status int // for emptyAnswer
	want   hostileOutcome
	// dropped: the gateway must close the connection (it cannot know
	// where the next answer starts).
	dropped bool
}

// staleAnswer is a well-formed answer to another request than any the
// clients make: a client that ever gets it got an answer meant for another.
var staleAnswer = manifestAnswer("/v2/acme/beta/app/manifests/stale")

func hostileCases() []hostileCase {
	whole := func(c *rawConn, path string) bool { c.write(manifestAnswer(path)); return true }
	early := []byte("HTTP/1.1 103 Early Hints\r\nLink: </v2/acme/stable/app/blobs/x>; rel=preload\r\nX-Upstream-Secret: 123456789012\r\n\r\n")
	return []hostileCase{{
		name: "unsolicited answer on an idle kept-alive connection", method: "GET", answer: whole,
		later: func(string) []byte { return staleAnswer }, want: ownAnswer, dropped: true,
	}, {
		name: "bytes past Content-Length in the same write", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write(append(manifestAnswer(path), staleAnswer...))
			return true
		},
		want: ownAnswer, dropped: true,
	}, {
		name: "bytes past Content-Length in a later packet", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write(manifestAnswer(path), staleAnswer)
			return true
		},
		want: ownAnswer, dropped: true,
	}, {
		name: "bytes past Content-Length once the client has its answer", method: "GET", answer: whole,
		later: func(string) []byte { return append([]byte("\r\n\r\n"), staleAnswer...) }, want: ownAnswer, dropped: true,
	}, {
		name: "HEAD answered with a body", method: "HEAD",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, len(body), ""), body, staleAnswer)
			return true
		},
		want: ownAnswer, dropped: true,
	}, {
		name: "204 followed by a body", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write([]byte("HTTP/1.1 204 No Content\r\n\r\n"), staleAnswer)
			return true
		},
		status: http.StatusNoContent, want: emptyAnswer, dropped: true,
	}, {
		name: "304 followed by a body", method: "GET", header: http.Header{"If-None-Match": {`"x"`}},
		answer: func(c *rawConn, path string) bool {
			c.write([]byte("HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n"), staleAnswer)
			return true
		},
		status: http.StatusNotModified, want: emptyAnswer, dropped: true,
	}, {
		name: "status 000 with a body", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write([]byte("HTTP/1.1 000 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body)
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "status 099, then an answer", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write([]byte("HTTP/1.1 099 Early\r\n\r\n"), manifestAnswer(path))
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "status 600 with a body", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write([]byte("HTTP/1.1 600 Odd\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body)
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "101 Switching Protocols nobody asked for", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write([]byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n"), staleAnswer)
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "a few 1xx, then the answer", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write(bytes.Repeat(early, 3), manifestAnswer(path))
			return true
		},
		want: ownAnswer,
	}, {
		name: "a flood of 1xx", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write(bytes.Repeat(early, (1<<20)/len(early)+1), manifestAnswer(path))
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "two Content-Length headers that disagree", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, len(body), "Content-Length: "+strconv.Itoa(len(body)+len(staleAnswer))+"\r\n"), body, staleAnswer)
			return true
		},
		want: badGateway, dropped: true,
	}, {
		// RFC 9112 6.3: Transfer-Encoding overrides Content-Length.
		name: "Transfer-Encoding with Content-Length", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, 5, "Transfer-Encoding: chunked\r\n"), chunked(body))
			return true
		},
		want: ownAnswer,
	}, {
		name: "cut mid-headers", method: "GET",
		answer: func(c *rawConn, path string) bool {
			c.write([]byte("HTTP/1.1 200 OK\r\nContent-Type: appl"))
			return false
		},
		want: badGateway,
	}, {
		name: "cut mid-body", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, len(body)+1000, ""), body)
			return false
		},
		want: cutAnswer,
	}, {
		name: "headers over 1 MiB", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, len(body), "X-Big: "+strings.Repeat("a", 1<<20)+"\r\n"), body)
			return true
		},
		want: badGateway, dropped: true,
	}, {
		name: "close-delimited body", method: "GET",
		answer: func(c *rawConn, path string) bool {
			body := namedManifest(path)
			c.write(manifestHead(body, -1, ""), body)
			return false
		},
		want: ownAnswer,
	}}
}

// TestHostileUpstream: for each way an upstream can break or strain
// HTTP/1.1's framing, over plain TCP and over TLS, the client gets the
// right answer, a 502 or a cut connection, never bytes the upstream sent
// for another request; the gateway drops every connection whose framing
// it can no longer trust; and the next request, another customer's, gets
// its own answer. The behaviour under test is net/http's Transport as the
// gateway configures it (NewUpstreamTransport) plus checkedStatus.
func TestHostileUpstream(t *testing.T) {
	t.Parallel()
	for _, tlsOn := range []bool{false, true} {
		name := "tcp"
		if tlsOn {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { testHostileUpstream(t, tlsOn) })
	}
}

func testHostileUpstream(t *testing.T, tlsOn bool) {
	cases := hostileCases()
	byTag := map[string]*hostileCase{}
	proceed := map[string]chan struct{}{}
	for i := range cases {
		tag := "case-" + strconv.Itoa(i)
		byTag[tag] = &cases[i]
		proceed[tag] = make(chan struct{})
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			for _, ch := range proceed {
				select {
				case <-ch:
				default:
					close(ch)
				}
			}
		})
	}
	up := newRawUpstream(t, tlsOn, func(c *rawConn, req *http.Request) bool {
		path := req.URL.Path
		tag := path[strings.LastIndexByte(path, '/')+1:]
		hc := byTag[tag]
		if hc == nil || req.Method != hc.method {
			// The next requests, and a HEAD's GET (headErrorAsGET).
			c.write(manifestAnswer(path))
			return true
		}
		keep := hc.answer(c, path)
		if keep && hc.later != nil {
			<-proceed[tag]
			c.write(hc.later(path))
		}
		return keep
	})
	t.Cleanup(stop) // before the upstream's cleanup: no answer left waiting
	e := newEnv(t, http.NotFoundHandler(), func(c *Config, o *Options) {
		c.Upstream.URL = up.url
		// The forwarder's own copy: the cache would read a manifest
		// whole before answering (a cut body then is a 502).
		c.ManifestCache.Disabled = true
		if tlsOn {
			o.Transport = trustingTransport(t, c.Upstream, up.roots)
		}
	})
	bob := e.claims()
	bob.Subject = "bob@example.com"
	alice, bobTok := e.token(), e.sign(bob)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	for i, hc := range cases {
		tag := "case-" + strconv.Itoa(i)
		path := "/v2/" + testPrefix + "stable/app/manifests/" + tag
		t.Run(hc.name, func(t *testing.T) {
			var informational atomic.Int32
			trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error {
				informational.Add(1)
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), hc.method,
				e.srv.URL+"/v2/stable/app/manifests/"+tag, nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Accept", testManifestType)
			for k, v := range hc.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				close(proceed[tag])
				if hc.want != cutAnswer {
					t.Fatal(err)
				}
				// Cut before the status line went out: the gateway
				// buffers the start of a body with its headers.
				resp = &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: errBody{err}}
			}
			body, bodyErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				close(proceed[tag])
			}

			own := namedManifest(path)
			switch hc.want {
			case ownAnswer:
				if hc.method == "HEAD" {
					own = nil
				}
				if resp.StatusCode != http.StatusOK || bodyErr != nil || !bytes.Equal(body, own) {
					t.Errorf("got %d %q (%v), want 200 and its own manifest", resp.StatusCode, body, bodyErr)
				}
				if hc.method == "HEAD" && resp.ContentLength != int64(len(namedManifest(path))) {
					t.Errorf("HEAD: Content-Length %d, want %d", resp.ContentLength, len(namedManifest(path)))
				}
			case emptyAnswer:
				if resp.StatusCode != hc.status || len(body) != 0 || bodyErr != nil {
					t.Errorf("got %d %q (%v), want %d and no body", resp.StatusCode, body, bodyErr, hc.status)
				}
			case badGateway:
				if resp.StatusCode != http.StatusBadGateway || bodyErr != nil || errorCode(t, string(body)) != "UNAVAILABLE" {
					t.Errorf("got %d %q (%v), want a 502 registry error", resp.StatusCode, body, bodyErr)
				}
			case cutAnswer:
				if resp.StatusCode != http.StatusOK || bodyErr == nil {
					t.Errorf("got %d, %d bytes, %v: want the connection cut before the declared length", resp.StatusCode, len(body), bodyErr)
				}
			}
			if bytes.Contains(body, []byte("stale")) || resp.Header.Get("X-Upstream-Secret") != "" {
				t.Errorf("the client got what the upstream sent outside its answer: %v %q", resp.Header, body)
			}
			if n := informational.Load(); n != 0 {
				t.Errorf("the client got %d 1xx answers of the upstream", n)
			}
			if hc.dropped {
				if kept := up.waitDropped([]string{path}, 5*time.Second); len(kept) > 0 {
					t.Errorf("the gateway kept the upstream connection")
				}
			}

			// Another customer's request next: its own answer.
			next := "/v2/" + testPrefix + "stable/app/manifests/next-" + strconv.Itoa(i)
			resp = e.do("GET", "/v2/stable/app/manifests/next-"+strconv.Itoa(i),
				http.Header{"Authorization": {"Bearer " + bobTok}, "Accept": {testManifestType}})
			if got := readBody(t, resp); resp.StatusCode != http.StatusOK || got != string(namedManifest(next)) {
				t.Errorf("the next request got %d %q, want its own manifest", resp.StatusCode, got)
			}
		})
	}
	if strings.Contains(e.logs.String(), "123456789012") {
		t.Error("the upstream's 1xx headers reached the log")
	}
}

// errBody is a body whose read fails with err.
type errBody struct{ err error }

func (b errBody) Read([]byte) (int, error) { return 0, b.err }
func (b errBody) Close() error             { return nil }

// trustingTransport is net/http's Transport as the gateway configures it
// for u (with its defaults), trusting roots for TLS.
func trustingTransport(t testing.TB, u UpstreamConfig, roots *x509.CertPool) http.RoundTripper {
	t.Helper()
	d := Config{Upstream: u}
	d.SetDefaults()
	tr := NewUpstreamTransport(d.Upstream)
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}
