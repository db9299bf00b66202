package urinorm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"notes://x/readme", "notes://x/readme"},
		{"NOTES://X.Example/ReadMe", "notes://x.example/ReadMe"},
		{"notes://x/a/./b/../c", "notes://x/a/c"},
		{"notes://x/a/%2e%2E/secret", "notes://x/secret"},
		{"notes://x/../../secret", "notes://x/secret"},
		{"notes://x/a/b/..", "notes://x/a/"},
		{"notes://x/a/", "notes://x/a/"}, // a trailing slash is kept
		{"notes://x/%7euser/%41%62", "notes://x/~user/Ab"},
		{"notes://x/a%2fb", "notes://x/a%2Fb"}, // an escaped slash stays escaped
		{"notes://x/a%20b?q=%3d#F%c3%a9", "notes://x/a%20b?q=%3D#F%C3%A9"},
		{"HTTPS://Example.COM:443", "https://example.com/"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"http://example.com:/a", "http://example.com/a"},
		{"http://example.com:8080/a", "http://example.com:8080/a"},
		{"http://User:Pw@Example.com/a", "http://User:Pw@example.com/a"},
		{"http://[FE80::1]:80/a", "http://[fe80::1]/a"},
		{"file:///srv//docs/./a.txt", "file:///srv/docs/a.txt"},
		{"FILE:///srv/docs/", "file:///srv/docs/"},
		{"urn:ISBN:0451450523", "urn:ISBN:0451450523"},
		{"mailto:Joe@Example.com", "mailto:Joe@Example.com"},
		{"notes:a/../b", "notes:a/../b"}, // not hierarchical
		{"notes://x", "notes://x"},
	} {
		got, err := Normalize(c.in)
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "no-scheme", ":x", "1x:y", "notes://x/a\x00", "notes://x/%0a", "notes://x/%zz", "notes://x/%4", "notes://x/\x7f"} {
		if got, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", bad, got)
		}
	}
}

func TestTemplate(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Notes://X/{id}", "notes://x/{id}"},
		{"notes://{host}/{id}", "notes://{host}/{id}"},
		{"file:///{path}", "file:///{path}"},
		{"notes://x/a%2fb/{id}", "notes://x/a%2Fb/{id}"},
		{"{scheme}://x", "{scheme}://x"},
	} {
		if got := Template(c.in); got != c.want {
			t.Errorf("Template(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEqual(t *testing.T) {
	if !Equal("NOTES://X/a/../b", "notes://x/%62") || Equal("notes://x/a", "notes://x/a/") || Equal("bad", "worse") || !Equal("bad", "bad") {
		t.Error("Equal")
	}
}

// FuzzNormalize: the normal form is a fixed point, never panics, keeps
// no control character, has no ".." segment left in a hierarchical path,
// and agrees with itself on case and escapes.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"notes://x/a/%2e%2E/b", "HTTP://A:80", "file:////a//b/../", "x:%", "a://[::1]:/", "a://u@h@k/", "s:/./..%2f", "s://h/a?%7e#%7E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Normalize(s)
		if err != nil {
			return
		}
		again, err := Normalize(n)
		if err != nil || again != n {
			t.Fatalf("Normalize(%q) = %q, then %q, %v", s, n, again, err)
		}
		for i := 0; i < len(n); i++ {
			if n[i] < 0x20 || n[i] == 0x7f {
				t.Fatalf("Normalize(%q) = %q has a control character", s, n)
			}
		}
		rest := n[strings.IndexByte(n, ':')+1:]
		if i := strings.IndexAny(rest, "?#"); i >= 0 {
			rest = rest[:i]
		}
		if strings.HasPrefix(rest, "/") {
			if strings.HasPrefix(rest, "//") {
				rest = rest[2:]
				if i := strings.IndexByte(rest, '/'); i >= 0 {
					rest = rest[i:]
				} else {
					rest = ""
				}
			}
			for _, seg := range strings.Split(rest, "/") {
				if seg == ".." || seg == "." && !strings.HasPrefix(rest, "/.//") {
					t.Fatalf("Normalize(%q) = %q keeps a dot segment", s, n)
				}
			}
		}
		if utf8.ValidString(s) && !utf8.ValidString(n) {
			t.Fatalf("Normalize(%q) = %q is not UTF-8", s, n)
		}
		Template(s)
	})
}
