package egress

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckHost(t *testing.T) {
	tests := []struct {
		host string
		want string // "" accepted, else a part of the error
	}{
		{"example.com", ""},
		{"mcp.example.com.", ""},
		{"localhost", ""},
		{"my_host.internal", ""},
		{"123abc.example", ""},
		{"a9fea9fe", ""}, // a name: inet_aton reads hex only after 0x
		{"0xg.example", ""},
		{"127.0.0.1", ""},
		{"169.254.169.254", ""}, // canonical: the dial policy judges it
		{"::1", ""},
		{"::ffff:169.254.169.254", ""},
		{"fe80::1%eth0", ""},
		{"0xA9FEA9FE", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"2852039166", "169.254.169.254"},
		{"0251.0376.0251.0376", "169.254.169.254"},
		{"169.254.43518", "169.254.169.254"},
		{"0xA9.0xFE.0xA9.0xFE", "169.254.169.254"},
		{"127.1", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"0x", "0.0.0.0"},
		{"10.0.0.010", "10.0.0.8"},
		{"1.2.3.4.", "trailing dot"},
		{"foo.123", "not an IPv4 address"},
		{"999.1.1.1", "not an IPv4 address"},
		{"1.2.3.4.5", "not an IPv4 address"},
		{"exämple.com", "xn--"},
		{"ex ample.com", "no place"},
		{"a..b", "empty label"},
		{".", "empty label"},
		{"", "must include a host"},
		{"::zz", "IPv6"},
	}
	for _, tc := range tests {
		err := CheckHost(tc.host)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckHost(%q) = %v, want accepted", tc.host, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckHost(%q) = %v, want an error mentioning %q", tc.host, err, tc.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"https://mcp.example.com/mcp", ""},
		{"http://127.0.0.1:8080/mcp", ""},
		{"http://[::1]:8080/mcp", ""},
		{"https://user:secret@mcp.example.com/mcp", "headers"},
		{"https://token@mcp.example.com/mcp", "credentials"},
		{"http://0xA9FEA9FE/latest/meta-data/", "169.254.169.254"},
		{"http://2852039166/", "non-standard form"},
		{"ftp://example.com/", "http:// or https://"},
		{"http:///mcp", "host"},
		{"http:example.com", "host"},
		{"http://example.com:0/", "port"},
		{"http://%zz/", "valid URL"},
	}
	for _, tc := range tests {
		err := CheckURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckURL(%q) = %v, want accepted", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckURL(%q) = %v, want an error mentioning %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckURL(%q) quotes the credentials: %v", tc.url, err)
		}
	}
}

func TestParseInetAton(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4":          "1.2.3.4",
		"127.1":            "127.0.0.1",
		"10.1.258":         "10.1.1.2",
		"0x7f000001":       "127.0.0.1",
		"017700000001":     "127.0.0.1",
		"4294967295":       "255.255.255.255",
		"0XFF.0.0.1":       "255.0.0.1",
		"1.2.3.4.":         "1.2.3.4",
		"4294967296":       "",
		"256.1.1.1":        "",
		"1.2.3.256":        "",
		"1.2.65536":        "",
		"08.1.1.1":         "", // 8 is not an octal digit
		"1.2.3.4.5":        "",
		"a.b.c.d":          "",
		"":                 "",
		"1..2":             "",
		"-1.2.3.4":         "",
		"+1.2.3.4":         "",
		"1_000":            "",
		"0x1.0x2.0x3.0x04": "1.2.3.4",
	} {
		a, ok := ParseInetAton(in)
		if want == "" {
			if ok {
				t.Errorf("ParseInetAton(%q) = %s, want no address", in, a)
			}
			continue
		}
		if !ok || a.String() != want {
			t.Errorf("ParseInetAton(%q) = %s %v, want %s", in, a, ok, want)
		}
	}
}

func TestOrigin(t *testing.T) {
	same := [][2]string{
		{"http://Example.com/a", "http://example.com:80/b"},
		{"https://example.com/", "https://example.com:443/x?y"},
		{"http://[::1]:8080/", "http://[0:0:0:0:0:0:0:1]:8080/"},
		{"http://example.com./", "http://example.com/"},
	}
	for _, p := range same {
		a, _ := url.Parse(p[0])
		b, _ := url.Parse(p[1])
		if Origin(a) != Origin(b) {
			t.Errorf("Origin(%s) = %s, Origin(%s) = %s, want equal", p[0], Origin(a), p[1], Origin(b))
		}
	}
	differ := [][2]string{
		{"http://example.com/", "https://example.com/"},
		{"http://example.com/", "http://example.com:8080/"},
		{"http://example.com/", "http://www.example.com/"},
		{"http://127.0.0.1:1/", "http://127.0.0.1:2/"},
	}
	for _, p := range differ {
		a, _ := url.Parse(p[0])
		b, _ := url.Parse(p[1])
		if Origin(a) == Origin(b) {
			t.Errorf("Origin(%s) == Origin(%s) = %s, want different", p[0], p[1], Origin(a))
		}
	}
}

// TestSameOriginRedirects follows a redirect within the server and refuses
// one to another port, which never sees a request.
func TestSameOriginRedirects(t *testing.T) {
	var otherHits int
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits++ }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/here":
			http.Redirect(w, r, "/there", http.StatusTemporaryRedirect)
		case "/there":
			w.WriteHeader(http.StatusNoContent)
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	c := &http.Client{CheckRedirect: SameOriginRedirects(`upstream "r"`)}
	resp, err := c.Get(srv.URL + "/here")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("same-origin redirect: %v %v, want it followed", resp, err)
	}
	resp.Body.Close()
	_, err = c.Get(srv.URL + "/away")
	var re *RedirectError
	if err == nil || !errors.As(err, &re) {
		t.Fatalf("cross-origin redirect: %v, want a *RedirectError", err)
	}
	if !strings.Contains(err.Error(), "set url to its new address") {
		t.Errorf("error does not say what to do: %v", err)
	}
	if otherHits != 0 {
		t.Errorf("the other server got %d requests, want 0", otherHits)
	}
}

// FuzzCheckHost checks the promise CheckHost makes: a host it accepts is
// either an IPv6 literal, or an IPv4 address in the one standard form, or a
// name that no resolver reads as an IPv4 address.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"example.com", "127.0.0.1", "0xA9FEA9FE", "2852039166", "127.1", "1.2.3.4.", "::ffff:169.254.169.254",
		"0251.0376.0251.0376", "a.0x", "exämple", "localhost", "fe80::1%eth0", "1e3", "0x.0x.0x.0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		err := CheckHost(host)
		a, atonOK := ParseInetAton(host)
		if atonOK && !a.Is4() {
			t.Fatalf("ParseInetAton(%q) = %s, not IPv4", host, a)
		}
		if err != nil {
			return
		}
		if strings.Contains(host, ":") {
			if _, perr := netip.ParseAddr(host); perr != nil {
				t.Fatalf("accepted %q, which has a colon but is no IPv6 address", host)
			}
			return
		}
		if !utf8.ValidString(host) || strings.IndexFunc(host, func(r rune) bool { return r >= 0x80 }) >= 0 {
			t.Fatalf("accepted non-ASCII host %q", host)
		}
		if atonOK {
			ip, perr := netip.ParseAddr(host)
			if perr != nil || ip.String() != host || ip != a {
				t.Fatalf("accepted %q, which inet_aton reads as %s", host, a)
			}
		}
	})
}

// FuzzCheckURL: an accepted URL parses, carries no credentials and has a
// host CheckHost accepts.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://mcp.example.com/mcp", "http://u:p@h/", "http://0xA9FEA9FE/", "http://[::ffff:169.254.169.254]:80/",
		"http://[fe80::1%25eth0]/", "http://h:99999/", "https://example.com:443/a?b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if CheckURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		if u.User != nil {
			t.Fatalf("accepted %q with credentials", raw)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		if err := CheckHost(u.Hostname()); err != nil {
			t.Fatalf("accepted %q whose host is refused: %v", raw, err)
		}
	})
}
