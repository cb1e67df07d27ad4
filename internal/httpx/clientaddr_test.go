package httpx

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusting, err := NewClientAddr([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := NewClientAddr(nil)
	tests := []struct {
		name      string
		c         *ClientAddr
		remote    string
		xff       []string
		want      string
		forwarded string
	}{
		{"no proxies configured", plain, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9", "203.0.113.9"},
		{"untrusted peer's XFF ignored", trusting, "203.0.113.9:5555", []string{"198.51.100.1"}, "203.0.113.9", "203.0.113.9"},
		{"trusted proxy", trusting, "10.1.2.3:5555", []string{"198.51.100.1"}, "198.51.100.1", "198.51.100.1, 10.1.2.3"},
		{"chain of trusted proxies", trusting, "10.1.2.3:5555", []string{"198.51.100.1, 192.0.2.1"}, "198.51.100.1", "198.51.100.1, 192.0.2.1, 10.1.2.3"},
		{"client-forged left entries ignored", trusting, "10.1.2.3:5555", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1", "6.6.6.6, 198.51.100.1, 10.1.2.3"},
		{"several headers", trusting, "10.1.2.3:5555", []string{"6.6.6.6", "198.51.100.1, 10.9.9.9"}, "198.51.100.1", "6.6.6.6, 198.51.100.1, 10.9.9.9, 10.1.2.3"},
		{"all trusted", trusting, "10.1.2.3:5555", []string{"10.4.4.4"}, "10.4.4.4", "10.4.4.4, 10.1.2.3"},
		// Balancers that write the port as well: the client is read, not
		// replaced by the balancer's address (which every customer
		// behind it would share).
		{"IPv4 with port", trusting, "10.1.2.3:5555", []string{"192.0.2.7:51234"}, "192.0.2.7", "192.0.2.7:51234, 10.1.2.3"},
		{"IPv6 with port", trusting, "10.1.2.3:5555", []string{"[2001:db8::1]:443"}, "2001:db8::1", "[2001:db8::1]:443, 10.1.2.3"},
		{"bracketed IPv6", trusting, "10.1.2.3:5555", []string{"[2001:db8::1]"}, "2001:db8::1", "[2001:db8::1], 10.1.2.3"},
		{"mapped IPv4 with port", trusting, "10.1.2.3:5555", []string{"[::ffff:198.51.100.1]:80"}, "198.51.100.1", "[::ffff:198.51.100.1]:80, 10.1.2.3"},
		{"trusted hop with port", trusting, "10.1.2.3:5555", []string{"6.6.6.6, 198.51.100.1:1, 10.9.9.9:8080"}, "198.51.100.1", "6.6.6.6, 198.51.100.1:1, 10.9.9.9:8080, 10.1.2.3"},
		{"empty entries skipped", trusting, "10.1.2.3:5555", []string{"198.51.100.1,, ", ""}, "198.51.100.1", "198.51.100.1,, , , 10.1.2.3"},
		// What is still unreadable is the client's own key, never the
		// proxy's address; nothing left of it is believed.
		{"garbage hop", trusting, "10.1.2.3:5555", []string{"198.51.100.1, junk"}, "junk", "198.51.100.1, junk, 10.1.2.3"},
		{"unknown", trusting, "10.1.2.3:5555", []string{" unknown "}, "unknown", " unknown , 10.1.2.3"},
		{"bracketed IPv4 is no address", trusting, "10.1.2.3:5555", []string{"[198.51.100.1]"}, "[198.51.100.1]", "[198.51.100.1], 10.1.2.3"},
		{"long garbage is cut", trusting, "10.1.2.3:5555", []string{strings.Repeat("x", 300)}, strings.Repeat("x", maxRawClient), strings.Repeat("x", 300) + ", 10.1.2.3"},
		{"nothing but commas", trusting, "10.1.2.3:5555", []string{" , ,"}, "10.1.2.3", " , ,, 10.1.2.3"},
		{"no XFF", trusting, "10.1.2.3:5555", nil, "10.1.2.3", "10.1.2.3"},
		{"IPv6 peer", plain, "[2001:db8::1]:443", nil, "2001:db8::1", "2001:db8::1"},
		{"IPv4-mapped proxy", trusting, "[::ffff:10.1.2.3]:1", []string{"198.51.100.7"}, "198.51.100.7", "198.51.100.7, ::ffff:10.1.2.3"},
		{"zero value trusts nobody", &ClientAddr{}, "10.1.2.3:5555", []string{"198.51.100.1"}, "10.1.2.3", "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := tt.c.Of(r); got != tt.want {
				t.Errorf("Of = %q, want %q", got, tt.want)
			}
			if got := tt.c.ForwardedFor(r); got != tt.forwarded {
				t.Errorf("ForwardedFor = %q, want %q", got, tt.forwarded)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"10.1.2.3/8": "10.0.0.0/8", "192.0.2.1": "192.0.2.1/32", "::1": "::1/128",
		"::ffff:10.0.0.1": "10.0.0.1/32", "2001:db8::/32": "2001:db8::/32",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "example.com", "10.0.0", "1.2.3.4/"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
	if _, err := NewClientAddr([]string{"10.0.0.0/8", "nope"}); err == nil {
		t.Error("NewClientAddr accepted a bad entry")
	}
}

// FuzzClientAddr feeds arbitrary peers and X-Forwarded-For values. The
// client found is always the peer, an XFF entry's address, or (for an
// entry that is no address) its bounded text; behind a trusted peer that
// forwarded a non-empty entry it is always taken from an entry, never the
// peer's address. The X-Forwarded-For sent on ends with the peer.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.1.2.3:5555", "6.6.6.6, 198.51.100.1", "")
	f.Add("203.0.113.9:1", "198.51.100.1", "10.0.0.1")
	f.Add("[::ffff:10.1.2.3]:1", "2001:db8::1,junk", "")
	f.Add("10.1.2.3", ",,,", " ")
	f.Add("[2001:db8::2]:443", "10.9.9.9, 10.8.8.8", "192.0.2.1")
	// The forms balancers write.
	f.Add("10.1.2.3:5555", "192.0.2.7:51234", "")
	f.Add("10.1.2.3:5555", "[2001:db8::1]:443", "10.9.9.9:80")
	f.Add("10.1.2.3:5555", "[2001:db8::1]", "[::ffff:10.2.2.2]:1")
	f.Add("10.1.2.3:5555", "[fe80::1%eth0]:8080", "")
	f.Add("10.1.2.3:5555", "unknown", "")
	f.Add("10.1.2.3:5555", "[198.51.100.1]:80, [", "]")
	f.Add("10.1.2.3:5555", strings.Repeat("\xff", 70), "")
	c, err := NewClientAddr([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/64"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		for _, v := range []string{xff1, xff2} {
			if v != "" {
				r.Header.Add("X-Forwarded-For", v)
			}
		}
		got := c.Of(r)
		host, peer, trusted := c.peer(r)
		fromEntries := map[string]bool{}
		entries := 0
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, part := range strings.Split(v, ",") {
				part = strings.TrimSpace(part)
				if part == "" {
					continue
				}
				entries++
				if a, ok := parseHop(part); ok {
					fromEntries[a.String()] = true
				} else {
					fromEntries[rawClient(part)] = true
				}
			}
		}
		if !fromEntries[got] && got != host && got != peer.String() {
			t.Fatalf("Of = %q: neither the peer %q nor from an X-Forwarded-For entry", got, host)
		}
		if trusted && entries > 0 && !fromEntries[got] {
			t.Fatalf("trusted peer %q forwarded %d entries, Of = %q is none of them", host, entries, got)
		}
		if _, err := netip.ParseAddr(got); err != nil && got != host && (len(got) > maxRawClient || !utf8.ValidString(got)) {
			t.Fatalf("Of = %q: unbounded or not UTF-8", got)
		}
		fwd := c.ForwardedFor(r)
		if !strings.HasSuffix(fwd, host) {
			t.Fatalf("ForwardedFor = %q does not end with the peer %q", fwd, host)
		}
		if !trusted && fwd != host {
			t.Fatalf("untrusted peer %q: ForwardedFor = %q", host, fwd)
		}
	})
}

// TestWarnUntrustedProxy: a request with X-Forwarded-For from a private or
// loopback peer while no proxy is trusted is logged once at WARN, naming
// the peer and the setting; public peers, requests without the header and
// a ClientAddr that trusts proxies log nothing.
func TestWarnUntrustedProxy(t *testing.T) {
	t.Parallel()
	plain, _ := NewClientAddr(nil)
	trusting, _ := NewClientAddr([]string{"10.0.0.0/8"})
	for _, tc := range []struct {
		name  string
		c     *ClientAddr
		reqs  [][2]string // remote, X-Forwarded-For
		warns int
		peer  string
	}{
		{"loopback proxy", plain, [][2]string{{"127.0.0.1:4000", "203.0.113.9"}, {"127.0.0.1:4001", "203.0.113.10"}}, 1, "127.0.0.1"},
		{"private proxy, IPv6", plain, [][2]string{{"[fd00::5]:1", "203.0.113.9"}, {"10.0.0.9:1", "198.51.100.77"}}, 1, "fd00::5"},
		{"mapped private proxy", plain, [][2]string{{"[::ffff:10.1.1.1]:1", "203.0.113.9"}}, 1, "::ffff:10.1.1.1"},
		{"public peer", plain, [][2]string{{"203.0.113.9:1", "198.51.100.1"}}, 0, ""},
		{"no header", plain, [][2]string{{"127.0.0.1:1", ""}}, 0, ""},
		{"proxies trusted", trusting, [][2]string{{"127.0.0.1:1", "198.51.100.1"}}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testutil.SyncBuffer{}
			h := tc.c.WarnUntrustedProxy(slog.New(slog.NewJSONHandler(logs, nil)), "trusted_proxies")(
				http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
			for _, rq := range tc.reqs {
				r := httptest.NewRequest("GET", "/token", nil)
				r.RemoteAddr = rq[0]
				if rq[1] != "" {
					r.Header.Set("X-Forwarded-For", rq[1])
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusTeapot {
					t.Fatalf("the request was not served: %d", w.Code)
				}
			}
			out := logs.String()
			if n := strings.Count(out, `"level":"WARN"`); n != tc.warns {
				t.Fatalf("%d warnings, want %d: %s", n, tc.warns, out)
			}
			if tc.warns > 0 && (!strings.Contains(out, `"peer":"`+tc.peer+`"`) || !strings.Contains(out, "trusted_proxies")) {
				t.Errorf("warning names neither the peer %s nor the setting: %s", tc.peer, out)
			}
			for _, rq := range tc.reqs {
				if rq[1] != "" && strings.Contains(out, rq[1]) {
					t.Errorf("the forwarded address %q is logged", rq[1])
				}
			}
		})
	}
}
