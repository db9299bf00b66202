// Package urinorm puts resource URIs in one normal form, so that the
// gateway compares, routes, caches, quarantines and relays a URI the same
// way however a client or an upstream spells it (docs/egress.md,
// "Resource URIs").
//
// The normal form is RFC 3986's syntax-based normalisation (section
// 6.2.2) with a little of its scheme-based one (6.2.3):
//
//   - the scheme and the host are lower-cased;
//   - percent escapes are written with upper-case hex digits, and those of
//     unreserved characters (letters, digits, '-', '.', '_', '~') are
//     decoded: "%7e" is "~", "%2E" is ".";
//   - "." and ".." segments are removed from a hierarchical path (one that
//     follows "//authority" or starts with "/"), after escapes are
//     decoded, so "%2e%2e" is a ".." too; a ".." never climbs above the
//     root;
//   - for http, https, ws and wss: an empty port and the scheme's default
//     port are dropped, and an empty path is "/";
//   - for file: runs of "/" in the path are one "/" (as a file system
//     reads them).
//
// Kept as written: the user information, the query and the fragment (but
// for their escapes), a trailing "/" (RFC 3986: "/a" and "/a/" are
// different resources, and servers that list directories tell them
// apart), "%2F" (an escaped "/" is not a path separator), and the case of
// everything but the scheme, the host and escapes.
package urinorm

import (
	"errors"
	"fmt"
	"strings"
)

// Normalize returns uri in the normal form. It refuses a URI with a
// control character (raw or escaped), a broken percent escape, or no
// scheme. Normalize(Normalize(u)) == Normalize(u).
func Normalize(uri string) (string, error) {
	for i := 0; i < len(uri); i++ {
		if b := uri[i]; b < 0x20 || b == 0x7f {
			return "", errors.New("contains a control character")
		}
	}
	colon := strings.IndexByte(uri, ':')
	if colon <= 0 || !validScheme(uri[:colon]) {
		return "", errors.New("has no scheme")
	}
	scheme := strings.ToLower(uri[:colon])
	rest := uri[colon+1:]
	var fragment, query string
	hasFragment, hasQuery := false, false
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest, fragment, hasFragment = rest[:i], rest[i+1:], true
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query, hasQuery = rest[:i], rest[i+1:], true
	}
	var b strings.Builder
	b.Grow(len(uri))
	b.WriteString(scheme)
	b.WriteByte(':')
	path := rest
	hierarchical := strings.HasPrefix(rest, "/")
	if strings.HasPrefix(rest, "//") {
		authority := rest[2:]
		path = ""
		if i := strings.IndexByte(authority, '/'); i >= 0 {
			authority, path = authority[:i], authority[i:]
		}
		a, err := normalAuthority(scheme, authority)
		if err != nil {
			return "", err
		}
		b.WriteString("//")
		b.WriteString(a)
		if path == "" && defaultPort[scheme] != "" {
			path = "/"
		}
	}
	p, err := escapes(path)
	if err != nil {
		return "", err
	}
	if hierarchical {
		if scheme == "file" {
			p = collapseSlashes(p)
		}
		p = removeDotSegments(p)
		if !strings.HasPrefix(rest, "//") && strings.HasPrefix(p, "//") {
			// Without an authority, a path may not start with "//" (it
			// would read as one): RFC 3986 section 5.3 keeps "/." before it.
			p = "/." + p
		}
	}
	b.WriteString(p)
	if hasQuery {
		q, err := escapes(query)
		if err != nil {
			return "", err
		}
		b.WriteByte('?')
		b.WriteString(q)
	}
	if hasFragment {
		f, err := escapes(fragment)
		if err != nil {
			return "", err
		}
		b.WriteByte('#')
		b.WriteString(f)
	}
	return b.String(), nil
}

// Template puts a URI template (RFC 6570) in the normal form as far as it
// is literal: the scheme, and the host when it holds no expression, are
// lower-cased, and percent escapes are written in upper case. A URI
// matched against the template is normalised by [Normalize]; the two
// agree on everything a template can spell literally.
func Template(t string) string {
	colon := strings.IndexByte(t, ':')
	if colon <= 0 || !validScheme(t[:colon]) {
		return t
	}
	out := strings.ToLower(t[:colon]) + ":"
	rest := t[colon+1:]
	if strings.HasPrefix(rest, "//") {
		auth := rest[2:]
		tail := ""
		if i := strings.IndexAny(auth, "/?#"); i >= 0 {
			auth, tail = auth[:i], auth[i:]
		}
		if !strings.ContainsAny(auth, "{}@") {
			auth = strings.ToLower(auth)
		}
		rest = "//" + auth + tail
	}
	return out + upperEscapes(rest)
}

// Equal reports whether two URIs are the same resource in the normal form
// (false if either cannot be normalised and they differ as written).
func Equal(a, b string) bool {
	if a == b {
		return true
	}
	na, err1 := Normalize(a)
	nb, err2 := Normalize(b)
	return err1 == nil && err2 == nil && na == nb
}

var defaultPort = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}

func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// normalAuthority lower-cases the host (not the user information) and
// drops an empty or default port.
func normalAuthority(scheme, a string) (string, error) {
	userinfo := ""
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		u, err := escapes(a[:i])
		if err != nil {
			return "", err
		}
		userinfo, a = u+"@", a[i+1:]
	}
	host, port := a, ""
	hasPort := false
	if strings.HasPrefix(a, "[") {
		if i := strings.IndexByte(a, ']'); i >= 0 {
			host = a[:i+1]
			if rest := a[i+1:]; strings.HasPrefix(rest, ":") {
				port, hasPort = rest[1:], true
			}
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port, hasPort = a[:i], a[i+1:], true
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") || strings.ContainsAny(host, "[]") && !(strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]")) {
		return "", fmt.Errorf("authority %q: a host with ':' must be an IP literal in brackets", a)
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", fmt.Errorf("authority %q: the port is not a number", a)
		}
	}
	h, err := escapes(host)
	if err != nil {
		return "", err
	}
	h = strings.ToLower(h)
	if hasPort && (port == "" || port == defaultPort[scheme]) {
		hasPort = false
	}
	if hasPort {
		return userinfo + h + ":" + port, nil
	}
	return userinfo + h, nil
}

// escapes writes escapes in upper case and decodes those of unreserved
// characters; a decoded control character or a broken escape is refused.
func escapes(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("broken percent escape at byte %d", i)
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		switch {
		case c < 0x20 || c == 0x7f:
			return "", errors.New("contains an encoded control character")
		case unreserved(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
		i += 2
	}
	return b.String(), nil
}

// upperEscapes writes the hex digits of well-formed escapes in upper case
// and leaves everything else as it is.
func upperEscapes(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' && isHex(b[i+1]) && isHex(b[i+2]) {
			b[i+1], b[i+2] = upper(b[i+1]), upper(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

const upperHex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func collapseSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}
