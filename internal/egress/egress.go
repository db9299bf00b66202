// Package egress decides where the gateway may open connections: the one
// policy every outbound connection of an HTTP or SSE upstream, of the hub
// link and of the OIDC key fetch is dialled through.
//
// The decision is made on the address actually dialled — after the name was
// resolved, in [net.Dialer.ControlContext] — so a name that resolves to a
// forbidden address, now or after a DNS change (rebinding), is refused at
// connect. IPv4-mapped IPv6 addresses are judged as the IPv4 address they
// carry, and so are NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses.
//
// A refusal is returned by the dialer's control function, so the error the
// dial fails with is a *net.OpError with Op "dial" that wraps a
// [*RefusedError]: callers that treat a failed dial as "never sent" keep
// doing so.
//
// What a URL may look like before it is ever dialled ([CheckURL],
// [CheckHost]) is decided here too, so that the configuration and the dialer
// agree on what a loopback upstream is.
//
// The package imports nothing of mcpedge.
package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// A Class is what kind of destination an address is.
type Class uint8

// The classes of address. Every class but Public is refused unless a
// [Policy] allows it.
const (
	Public      Class = iota // globally routable
	Loopback                 // 127.0.0.0/8, ::1
	Private                  // RFC 1918: 10/8, 172.16/12, 192.168/16
	CGNAT                    // RFC 6598 shared address space: 100.64/10
	LinkLocal                // 169.254/16, fe80::/10
	Metadata                 // cloud instance metadata endpoints (169.254.169.254, fd00:ec2::254, …)
	UniqueLocal              // fc00::/7
	Unspecified              // 0.0.0.0/8, ::
	Multicast                // 224/4, ff00::/8
	Reserved                 // 240/4 (with broadcast), 192.0.0/24, 198.18/15, other IPv6 reserved space
)

var classNames = [...]string{
	Public:      "public",
	Loopback:    "loopback",
	Private:     "private",
	CGNAT:       "cgnat",
	LinkLocal:   "link-local",
	Metadata:    "metadata",
	UniqueLocal: "unique-local",
	Unspecified: "unspecified",
	Multicast:   "multicast",
	Reserved:    "reserved",
}

// String returns the class's short name, as in metrics and logs.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Describe says what the class is in words, for error messages.
func (c Class) Describe() string {
	switch c {
	case Public:
		return "public address"
	case Loopback:
		return "loopback address"
	case Private:
		return "private (RFC 1918) address"
	case CGNAT:
		return "shared (CGNAT, RFC 6598) address"
	case LinkLocal:
		return "link-local address"
	case Metadata:
		return "link-local/metadata address: cloud instance metadata and credentials"
	case UniqueLocal:
		return "unique-local (fc00::/7) address"
	case Unspecified:
		return "unspecified address, which reaches this host"
	case Multicast:
		return "multicast address"
	case Reserved:
		return "reserved address"
	}
	return c.String()
}

type rangeClass struct {
	p netip.Prefix
	c Class
}

// ranges classify addresses; the first match wins, so single addresses
// (the metadata endpoints) come before the ranges that hold them. An
// address in none of them is public.
var ranges = func() []rangeClass {
	var out []rangeClass
	add := func(c Class, prefixes ...string) {
		for _, s := range prefixes {
			out = append(out, rangeClass{netip.MustParsePrefix(s), c})
		}
	}
	add(Metadata,
		"169.254.169.254/32", // AWS, GCP, Azure, OCI, DigitalOcean… instance metadata
		"169.254.170.2/32",   // AWS ECS task credentials
		"169.254.170.23/32",  // AWS EKS pod identity agent
		"100.100.100.200/32", // Alibaba Cloud metadata
		"168.63.129.16/32",   // Azure WireServer (a public address only Azure hosts answer)
		"fd00:ec2::254/128",  // AWS metadata over IPv6
		"fd00:ec2::23/128",   // AWS EKS pod identity agent over IPv6
	)
	add(Unspecified, "0.0.0.0/8", "::/128")
	add(Loopback, "127.0.0.0/8", "::1/128")
	add(Private, "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
	add(CGNAT, "100.64.0.0/10")
	add(LinkLocal, "169.254.0.0/16", "fe80::/10")
	add(Multicast, "224.0.0.0/4", "ff00::/8")
	add(Reserved,
		"240.0.0.0/4",   // future use, and 255.255.255.255
		"192.0.0.0/24",  // IETF protocol assignments
		"198.18.0.0/15", // benchmarking (also fake-IP DNS of local proxies)
		"::/8",          // IPv4-compatible and other reserved IPv6
		"100::/64",      // discard-only
		"fec0::/10",     // deprecated site-local
	)
	add(UniqueLocal, "fc00::/7")
	return out
}()

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Classify says what kind of destination a is. An IPv6 zone is ignored;
// an IPv4-mapped address is the IPv4 address it carries; a NAT64 or 6to4
// address whose embedded IPv4 address is not public takes that address's
// class, since that is where a translator would send it.
func Classify(a netip.Addr) Class {
	a = Normalize(a)
	if !a.IsValid() {
		return Unspecified
	}
	if a.Is6() {
		b := a.As16()
		var v4 netip.Addr
		switch {
		case nat64.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if c := Classify(v4); c != Public {
				return c
			}
			return Public
		}
	}
	for _, r := range ranges {
		if r.p.Contains(a) {
			return r.c
		}
	}
	return Public
}

// Normalize returns a without its IPv6 zone and, if it is an IPv4-mapped
// IPv6 address (::ffff:a.b.c.d), as the IPv4 address — the form every
// check in this package works on.
func Normalize(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// A Policy says which addresses one user of the network may dial. The zero
// Policy allows public addresses only.
//
// A Policy is read-only once in use and safe for concurrent use.
type Policy struct {
	// Who names the dialler in errors, e.g. `upstream "search"` or "hub".
	Who string
	// Allow lists ranges that may be dialled whatever their class (the
	// operator's allow_private), compared with the normalized address. A
	// metadata address is allowed only by an entry naming it alone (a /32
	// or /128), never by a wider range that happens to hold it.
	Allow []netip.Prefix
	// Loopback allows loopback addresses: for an upstream configured on a
	// loopback address or "localhost".
	Loopback bool
	// Trusted allows every private class — private, CGNAT, link-local,
	// unique-local and loopback — for a destination the operator names
	// and trusts (the hub, an OIDC provider). Metadata, unspecified,
	// multicast and reserved addresses are still refused.
	Trusted bool
	// AllowKey is the configuration key that allows a refused address,
	// suggested in the refusal ("allow_private"); "" when there is none.
	AllowKey string
}

// Allowed reports whether the policy lets a be dialled, and a's class.
func (p *Policy) Allowed(a netip.Addr) (Class, bool) {
	c := Classify(a)
	if c == Public {
		return c, true
	}
	n := Normalize(a)
	for _, pr := range p.Allow {
		// A metadata address is allowed only by an entry that names it
		// alone: allowing link-local devices (169.254.0.0/16), or
		// everything, must not also hand out the instance's credentials.
		if c == Metadata && pr.Bits() != n.BitLen() {
			continue
		}
		if pr.Contains(n) {
			return c, true
		}
	}
	switch c {
	case Loopback:
		return c, p.Loopback || p.Trusted
	case Private, CGNAT, LinkLocal, UniqueLocal:
		return c, p.Trusted
	}
	return c, false
}

// Check returns a [*RefusedError] when the policy does not let ap be
// dialled, else nil.
func (p *Policy) Check(ap netip.AddrPort) error {
	if c, ok := p.Allowed(ap.Addr()); !ok {
		return &RefusedError{Who: p.Who, Addr: ap, Class: c, AllowKey: p.AllowKey}
	}
	return nil
}

// Control is a [net.Dialer.ControlContext] function: it is called with the
// resolved address of every connection attempt, before the connection is
// made, and refuses the ones the policy does not allow.
func (p *Policy) Control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Dialers only hand IP:port to control functions; anything else
		// cannot be judged and is not dialled.
		return fmt.Errorf("%s: refusing to connect to %q over %s: not an IP address and port", p.who(), address, network)
	}
	return p.Check(ap)
}

// Dialer returns a copy of d that dials through the policy. A control
// function d already has runs after the policy's check.
func (p *Policy) Dialer(d *net.Dialer) *net.Dialer {
	nd := &net.Dialer{}
	if d != nil {
		*nd = *d
	}
	prevCtx, prev := nd.ControlContext, nd.Control
	nd.Control = nil
	nd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if err := p.Control(ctx, network, address, c); err != nil {
			return err
		}
		switch {
		case prevCtx != nil:
			return prevCtx(ctx, network, address, c)
		case prev != nil:
			return prev(network, address, c)
		}
		return nil
	}
	return nd
}

func (p *Policy) who() string {
	if p.Who == "" {
		return "egress"
	}
	return p.Who
}

// RefusedError is a connection the policy did not allow. A dial that is
// refused fails with a *net.OpError (Op "dial") wrapping it.
type RefusedError struct {
	Who      string
	Addr     netip.AddrPort
	Class    Class
	AllowKey string
}

func (e *RefusedError) Error() string {
	who := e.Who
	if who == "" {
		who = "egress"
	}
	s := fmt.Sprintf("%s: refusing to connect to %s (%s)", who, e.Addr, e.Class.Describe())
	if e.AllowKey == "" {
		return s + "; this destination is never dialled for it"
	}
	return s + fmt.Sprintf("; allow it with %s = [%q] if you mean it", e.AllowKey, HostPrefix(e.Addr.Addr()).String())
}

// HostPrefix returns the single-address prefix of a (normalized): a/32 or
// a/128.
func HostPrefix(a netip.Addr) netip.Prefix {
	a = Normalize(a)
	return netip.PrefixFrom(a, a.BitLen())
}

// IsLoopbackHost reports whether host (a URL's host name, without port or
// brackets) names this machine's loopback: "localhost" or a loopback
// address literal. Only such a host lets an upstream dial loopback by
// default. "localhost." and other names that merely resolve to loopback do
// not count: what they resolve to can change.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && Classify(a) == Loopback
}
