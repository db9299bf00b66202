package ratelimit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP resolves the address of the client behind a request, for the IP
// rate-limit dimension, allowlists and logs.
//
// X-Forwarded-For is written by whoever sent the request, so it is only
// believed when the direct peer is a trusted proxy. The list is then walked
// right to left — each proxy appends the address it received the request
// from — skipping trusted proxies; the first untrusted address is the
// client. Everything to its left was supplied by the client and is
// ignored, so prepending fake addresses changes nothing.
//
// A malformed element met on the walk ends it: it was written by a trusted
// hop (everything to its right is trusted), so nothing further left can be
// attributed, and the nearest trusted address is returned instead. That
// may group several clients under one proxy address, which only makes
// limits stricter — never lets a client choose its own bucket.
//
// The RFC 7239 Forwarded header and X-Real-IP are not read: one header
// with one well-defined walk leaves fewer ways to disagree with the proxy.
//
// A nil *ClientIP trusts no proxy.
type ClientIP struct {
	trusted []netip.Prefix
}

// maxForwardHops bounds the X-Forwarded-For walk. Real chains have a
// handful of proxies; a longer all-trusted chain resolves to the hop
// reached so far.
const maxForwardHops = 32

// NewClientIP returns a resolver that trusts X-Forwarded-For from peers in
// trustedCIDRs. Entries are CIDRs ("10.0.0.0/8", "fd00::/8") or single
// addresses ("192.0.2.7"). An empty list trusts no one: the peer address is
// always the client.
func NewClientIP(trustedCIDRs []string) (*ClientIP, error) {
	p, err := parsePrefixes("trusted proxy", trustedCIDRs)
	if err != nil {
		return nil, err
	}
	return &ClientIP{trusted: p}, nil
}

// From returns the client address of r in canonical text form (IPv4 as
// dotted quad, IPv6 compressed lower case), or "" when the peer address is
// not an IP (for example a Unix socket), which skips the IP dimension.
func (c *ClientIP) From(r *http.Request) string {
	a := c.Addr(r)
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Addr is [ClientIP.From] without the string allocation: the client
// address, or the zero Addr when the peer is not an IP.
func (c *ClientIP) Addr(r *http.Request) netip.Addr {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !c.trusts(peer) {
		return peer
	}
	last := peer
	hops := 0
	vals := r.Header["X-Forwarded-For"] // canonical key: no allocation
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var elem string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, ""
			}
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue // "a, , b" or a trailing comma: sloppy, not hostile
			}
			if hops++; hops > maxForwardHops {
				return last
			}
			a, ok := parseHop(elem)
			if !ok {
				return last
			}
			if !c.trusts(a) {
				return a
			}
			last = a
		}
	}
	return last
}

func (c *ClientIP) trusts(a netip.Addr) bool {
	if c == nil {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses one address as found in RemoteAddr or X-Forwarded-For:
// "192.0.2.1", "2001:db8::1", with or without a port ("192.0.2.1:443",
// "[2001:db8::1]:443") or brackets ("[2001:db8::1]"). The result is
// normalized so that one client has one spelling: IPv4-mapped IPv6 becomes
// IPv4 and any IPv6 zone is dropped.
func parseHop(s string) (netip.Addr, bool) {
	// Pick the parser from the shape, so the common forms never take a
	// failing parse (whose error value allocates).
	var a netip.Addr
	var err error
	switch {
	case strings.HasPrefix(s, "["):
		if strings.HasSuffix(s, "]") {
			a, err = netip.ParseAddr(s[1 : len(s)-1])
		} else {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(s)
			a = ap.Addr()
		}
	case strings.Count(s, ":") == 1: // IPv4 with a port
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(s)
		a = ap.Addr()
	default: // IPv4, or IPv6 without brackets
		a, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// An Allowlist restricts which client addresses may use a tenant. The zero
// value (or an empty list) allows every address, so tenants without an
// allowlist need no special case.
type Allowlist struct {
	prefixes []netip.Prefix
}

// ParseAllowlist parses CIDRs ("203.0.113.0/24", "2001:db8::/32") or single
// addresses. The error names the first bad entry.
func ParseAllowlist(cidrs []string) (Allowlist, error) {
	p, err := parsePrefixes("allowlist entry", cidrs)
	if err != nil {
		return Allowlist{}, err
	}
	return Allowlist{prefixes: p}, nil
}

// Contains reports whether ip (as returned by [ClientIP.From]) is allowed.
// An empty list allows everything; otherwise an unparsable ip is refused.
func (a Allowlist) Contains(ip string) bool {
	if len(a.prefixes) == 0 {
		return true
	}
	addr, ok := parseHop(ip)
	return ok && a.ContainsAddr(addr)
}

// ContainsAddr is [Allowlist.Contains] for an already parsed address.
func (a Allowlist) ContainsAddr(ip netip.Addr) bool {
	if len(a.prefixes) == 0 {
		return true
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Empty reports whether the list allows every address.
func (a Allowlist) Empty() bool { return len(a.prefixes) == 0 }

// parsePrefixes parses CIDRs or single addresses, normalizing
// IPv4-mapped IPv6 prefixes to IPv4 so they match the (unmapped)
// addresses parseHop returns.
func parsePrefixes(what string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, raw := range list {
		s := strings.TrimSpace(raw)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("ratelimit: %s %q is not a valid CIDR: %w", what, raw, err)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("ratelimit: %s %q is not a valid CIDR or IP address: %w", what, raw, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("ratelimit: %s %q: IPv6 zones are not supported", what, raw)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
