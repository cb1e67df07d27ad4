package httpx

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// ClientAddr finds the address a request comes from, for rate limits and
// audit lines: the peer, unless the peer is a trusted proxy, in which case
// X-Forwarded-For is walked from the right (the entries proxies appended)
// to the first address that is not a trusted proxy. Anything a client wrote
// further left is not believed. The zero value trusts no proxy.
type ClientAddr struct {
	trusted []netip.Prefix
}

// ParsePrefix takes a CIDR or a single address (a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// NewClientAddr trusts the proxies of cidrs (see ParsePrefix).
func NewClientAddr(cidrs []string) (*ClientAddr, error) {
	c := &ClientAddr{}
	for _, s := range cidrs {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (c *ClientAddr) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the host part of r.RemoteAddr, and whether it is a trusted proxy.
func (c *ClientAddr) peer(r *http.Request) (string, netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(c.trusted) == 0 {
		return host, netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host, netip.Addr{}, false
	}
	a = a.Unmap()
	return host, a, c.isTrusted(a)
}

// Of returns the client address of r as a string: an address, or, for an
// X-Forwarded-For entry a trusted proxy wrote that is no address, that
// entry's text (see rawClient).
func (c *ClientAddr) Of(r *http.Request) string {
	host, client, trusted := c.peer(r)
	if !trusted {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		rest := hops[i]
		for rest != "" {
			var hop string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				hop, rest = rest, ""
			}
			hop = strings.TrimSpace(hop)
			if hop == "" {
				// "a,,b" or a trailing comma: nothing was written there.
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				// A trusted proxy wrote something we cannot read (a
				// balancer's own format). It stands for the client
				// there, and nothing left of it can be believed: its
				// text is the client. Falling back to the proxy's
				// address instead would put every customer behind that
				// proxy into one failed-login budget.
				return rawClient(hop)
			}
			client = a
			if !c.isTrusted(client) {
				return client.String()
			}
		}
	}
	return client.String()
}

// parseHop reads one X-Forwarded-For entry in the forms balancers write:
// IP, IP:port, [IPv6] and [IPv6]:port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// maxRawClient bounds the text of an X-Forwarded-For entry that is used as
// the client (rawClient): it becomes a rate limiter key and goes on log
// lines.
const maxRawClient = 64

// rawClient is the client key of an X-Forwarded-For entry that is no
// address: its text, cut to maxRawClient bytes, bytes that are not UTF-8
// replaced by "?" (never empty: hop is not).
func rawClient(hop string) string {
	if len(hop) > maxRawClient {
		hop = hop[:maxRawClient]
	}
	return strings.ToValidUTF8(hop, "?")
}

// ForwardedFor is the X-Forwarded-For a proxy sends on for r: the incoming
// chain with the peer appended when the peer is a trusted proxy (a load
// balancer that appended the real client), otherwise the peer alone, so
// that a client cannot choose the address the next hop believes.
func (c *ClientAddr) ForwardedFor(r *http.Request) string {
	host, _, trusted := c.peer(r)
	if !trusted {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	if len(hops) == 0 {
		return host
	}
	return strings.Join(hops, ", ") + ", " + host
}

// WarnUntrustedProxy is a middleware that logs once, at WARN, a request
// that comes from a private or loopback address with X-Forwarded-For while
// c trusts no proxy. That is a service behind a proxy (a load balancer,
// the gateway) it does not trust: every client is the proxy's address to
// it, so all customers share one failed-login budget and one client's
// failures lock them all out. The line names the peer and the setting to
// fix. Once per ClientAddr (one per service, so once per process): the
// condition holds for every request and a line each would flood the log.
// With proxies trusted, or nothing to log to, it adds nothing to a request.
func (c *ClientAddr) WarnUntrustedProxy(log *slog.Logger, setting string) Middleware {
	check := c.UntrustedProxyCheck(log, setting)
	if check == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			check(r)
			next.ServeHTTP(w, r)
		})
	}
}

// UntrustedProxyCheck is WarnUntrustedProxy as a function a handler calls
// with each request; nil when there is nothing to warn about (a proxy is
// trusted, or no log).
func (c *ClientAddr) UntrustedProxyCheck(log *slog.Logger, setting string) func(*http.Request) {
	if len(c.trusted) > 0 || log == nil {
		return nil
	}
	var warned atomic.Bool
	return func(r *http.Request) {
		if len(r.Header["X-Forwarded-For"]) > 0 && !warned.Load() {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			if a, err := netip.ParseAddr(host); err == nil && (a.Unmap().IsPrivate() || a.Unmap().IsLoopback()) &&
				warned.CompareAndSwap(false, true) {
				log.LogAttrs(r.Context(), slog.LevelWarn,
					"X-Forwarded-For from a private or loopback address, and no proxy is trusted: "+
						"every client behind that proxy shares its address, and one failed-login budget",
					slog.String("peer", host),
					slog.String("hint", "list the proxy's address in "+setting))
			}
		}
	}
}
