package httpx

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
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

// Of returns the client address of r as a string.
func (c *ClientAddr) Of(r *http.Request) string {
	host, client, trusted := c.peer(r)
	if !trusted {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// A hop we cannot read ends the trust chain; use the last
				// address we could.
				return client.String()
			}
			client = a.Unmap()
			if !c.isTrusted(client) {
				return client.String()
			}
		}
	}
	return client.String()
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
