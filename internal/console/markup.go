package console

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// markup is an HTML document being written by the page functions. It
// replaces html/template: a template executor calls methods by name
// through reflection, which makes the linker keep every exported method
// of every type in the binary (about 10 MB, docs/design/console.md).
//
// The rule that keeps it safe: raw takes only markup written in this
// package (string literals); every value goes through text, attr or href,
// which escape it. Attribute values are always double-quoted.
type markup struct {
	b strings.Builder
}

// raw appends trusted markup: string literals of this package only.
func (m *markup) raw(s ...string) {
	for _, x := range s {
		m.b.WriteString(x)
	}
}

// text appends s as element text.
func (m *markup) text(s string) { escapeTo(&m.b, s) }

// int appends a number as text.
func (m *markup) int(n int64) { m.b.WriteString(strconv.FormatInt(n, 10)) }

// attr appends ` name="value"` with value escaped.
func (m *markup) attr(name, value string) {
	m.b.WriteByte(' ')
	m.b.WriteString(name)
	m.b.WriteString(`="`)
	escapeTo(&m.b, value)
	m.b.WriteByte('"')
}

// href appends ` name="url"` for a URL the console built: a path of the
// console or a raster data: URL. Anything else (a javascript: URL, another
// origin) becomes "#", so a mistake can not turn into a script or a leak.
func (m *markup) href(name, url string) {
	if !safeURL(url) {
		url = "#"
	}
	m.attr(name, url)
}

// flag appends ` name` when on (selected, checked, required …).
func (m *markup) flag(name string, on bool) {
	if on {
		m.b.WriteByte(' ')
		m.b.WriteString(name)
	}
}

// when appends a time as text ("—" for none).
func (m *markup) when(t time.Time) { m.text(when(t)) }

// hidden appends a hidden form field.
func (m *markup) hidden(name, value string) {
	m.raw(`<input type="hidden"`)
	m.attr("name", name)
	m.attr("value", value)
	m.raw(`>`)
}

func (m *markup) String() string { return m.b.String() }

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// safeURL: a path on this origin ("/…" but not "//…", which names
// another host) or a data: URL of a raster image.
func safeURL(u string) bool {
	if strings.HasPrefix(u, "/") {
		return !strings.HasPrefix(u, "//") && !strings.HasPrefix(u, `/\`)
	}
	for _, t := range []string{"image/png", "image/jpeg", "image/gif", "image/webp"} {
		if strings.HasPrefix(u, "data:"+t+";base64,") {
			return true
		}
	}
	return false
}

// escapeTo writes s escaped for both element text and a double-quoted
// attribute value: the five characters that end or start markup become
// references; NUL and invalid UTF-8 become U+FFFD (as an HTML parser would
// read them), so the output is always valid UTF-8.
func escapeTo(b *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var rep string
		switch {
		case c == '&':
			rep = "&amp;"
		case c == '<':
			rep = "&lt;"
		case c == '>':
			rep = "&gt;"
		case c == '"':
			rep = "&#34;"
		case c == '\'':
			rep = "&#39;"
		case c == 0:
			rep = "\uFFFD"
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				rep = "\uFFFD"
			} else {
				i += n
				continue
			}
		default:
			i++
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		i++
		last = i
	}
	b.WriteString(s[last:])
}

// escape returns s escaped as escapeTo writes it.
func escape(s string) string {
	var b strings.Builder
	escapeTo(&b, s)
	return b.String()
}
