package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// CheckURL checks an outbound URL from the configuration before it is ever
// dialled: an http or https URL with a host, no credentials in it, and a
// host every resolver reads the same way ([CheckHost]). Errors never quote
// the URL, which may carry a secret expanded from the environment.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an http:// or https:// URL")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return errors.New("must include a host, e.g. https://mcp.example.com/mcp")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (user:password@host): they would be sent to the server as Basic auth, and they show in logs; put them in the headers table instead, e.g. headers = { Authorization = \"Bearer ${TOKEN}\" }")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("port must be a number from 1 to 65535")
		}
	}
	return CheckHost(u.Hostname())
}

// CheckHost checks a URL's host name (as [url.URL.Hostname] returns it:
// no port, no brackets) for forms that resolvers read differently, which
// could make a name that looks harmless reach an address the egress policy
// is meant to keep out, or the other way round:
//
//   - a host whose last label is a number ("2852039166", "0xA9FEA9FE",
//     "169.254.43518", "0251.0376.0251.0376", "10.0.0.010") is an IPv4
//     address to the C library's resolver and to browsers, and a name to
//     Go's; it must be an IPv4 address in the standard form a.b.c.d;
//   - an IPv4 address with a trailing dot;
//   - non-ASCII names, which resolvers encode differently (written as
//     xn-- punycode they are fine);
//   - characters that have no place in a host name.
//
// IPv6 literals are accepted in any form Go parses: their meaning does not
// depend on who reads them.
func CheckHost(host string) error {
	if host == "" {
		return errors.New("must include a host")
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return errors.New("host is not a valid IPv6 address")
		}
		return nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case c >= 0x80:
			return errors.New("host must be ASCII: write an internationalised name in its xn-- (punycode) form")
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return fmt.Errorf("host contains %q, which has no place in a host name", rune(c))
		}
	}
	name := strings.TrimSuffix(host, ".")
	if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, ".") {
		return errors.New("host has an empty label")
	}
	labels := strings.Split(name, ".")
	if !numericLabel(labels[len(labels)-1]) {
		return nil
	}
	// It ends in a number, so some resolvers read it as an IPv4 address:
	// only the one form they all agree on is accepted.
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() && a.String() == name {
		if name != host {
			return fmt.Errorf("IPv4 address %s must be written without a trailing dot", name)
		}
		return nil
	}
	if a, ok := ParseInetAton(name); ok {
		return fmt.Errorf("host %q is the IPv4 address %s written in a non-standard form (some resolvers read it so, others as a name); write the address as four decimal numbers, %s", truncate(host, 64), a, a)
	}
	return fmt.Errorf("host %q ends in a number but is not an IPv4 address; write an IPv4 address as four decimal numbers, e.g. 192.0.2.10", truncate(host, 64))
}

// numericLabel reports whether a label is a number to the URL standard's
// IPv4 parser: decimal digits, or 0x followed by hex digits (or nothing).
func numericLabel(l string) bool {
	if l == "" {
		return false
	}
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		for i := 2; i < len(l); i++ {
			if !isHex(l[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ParseInetAton reads s as the C library's inet_aton does: one to four
// parts separated by dots, each decimal, octal (leading 0) or hex (0x); the
// last part fills the remaining bytes ("127.1" is 127.0.0.1, "2852039166"
// is 169.254.169.254). It is how a host Go would look up as a name is
// dialled by other software, and what [CheckHost] tells the user their
// host means.
func ParseInetAton(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) < 1 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := atonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	last := vals[len(vals)-1]
	// The leading parts are one byte each; the last fills the rest.
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n := last
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func atonPart(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true // "0x" alone is 0 to inet_aton
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	v, err := strconv.ParseUint(p, base, 32)
	if err != nil {
		return 0, false
	}
	return v, true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
