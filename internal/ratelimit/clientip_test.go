package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func request(remote string, xff ...string) *http.Request {
	r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestClientIP(t *testing.T) {
	c, err := NewClientIP([]string{"10.0.0.0/8", "fd00::/8", " 192.0.2.10 "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no header", "203.0.113.5:4711", nil, "203.0.113.5"},
		{"untrusted peer's header is ignored", "203.0.113.5:4711", []string{"1.2.3.4"}, "203.0.113.5"},
		{"untrusted peer spoofing a trusted chain", "203.0.113.5:4711", []string{"198.51.100.1, 10.0.0.1"}, "203.0.113.5"},
		{"trusted proxy, one client", "10.0.0.1:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted proxy without header", "10.0.0.1:80", nil, "10.0.0.1"},
		{"trusted chain skipped right to left", "10.0.0.1:80", []string{"198.51.100.7, 10.1.1.1, 192.0.2.10"}, "198.51.100.7"},
		{"client-prepended fakes ignored", "10.0.0.1:80", []string{"6.6.6.6, 7.7.7.7, 198.51.100.7"}, "198.51.100.7"},
		{"several header lines are one list", "10.0.0.1:80", []string{"6.6.6.6, 198.51.100.7", "10.2.2.2"}, "198.51.100.7"},
		{"all trusted: leftmost", "10.0.0.1:80", []string{"10.9.9.9, 10.8.8.8"}, "10.9.9.9"},
		{"garbage stops at nearest trusted hop", "10.0.0.1:80", []string{"198.51.100.7, bogus"}, "10.0.0.1"},
		{"garbage behind trusted hops", "10.0.0.1:80", []string{"198.51.100.7, <script>, 10.3.3.3"}, "10.3.3.3"},
		{"garbage left of the client is irrelevant", "10.0.0.1:80", []string{"bogus, 198.51.100.7"}, "198.51.100.7"},
		{"unknown token", "10.0.0.1:80", []string{"unknown"}, "10.0.0.1"},
		{"empty elements skipped", "10.0.0.1:80", []string{" , 198.51.100.7 ,, "}, "198.51.100.7"},
		{"empty header", "10.0.0.1:80", []string{""}, "10.0.0.1"},
		{"element with port", "10.0.0.1:80", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"ipv6 peer untrusted", "[2001:db8::1]:443", []string{"1.2.3.4"}, "2001:db8::1"},
		{"ipv6 trusted proxy", "[fd00::1]:443", []string{"2001:DB8:0:0::7"}, "2001:db8::7"},
		{"ipv6 element with brackets and port", "[fd00::1]:443", []string{"[2001:db8::9]:1234"}, "2001:db8::9"},
		{"ipv6 element with brackets", "[fd00::1]:443", []string{"[2001:db8::9]"}, "2001:db8::9"},
		{"ipv4-mapped peer matches ipv4 CIDR", "[::ffff:10.0.0.1]:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"ipv4-mapped client normalized", "10.0.0.1:80", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"zone dropped", "[fe80::1%eth0]:80", nil, "fe80::1"},
		{"peer without port", "203.0.113.5", nil, "203.0.113.5"},
		{"unix socket peer", "@", []string{"1.2.3.4"}, ""},
		{"empty peer", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.From(request(tt.remote, tt.xff...)); got != tt.want {
				t.Errorf("From(RemoteAddr %q, XFF %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func TestClientIPLongChain(t *testing.T) {
	c, _ := NewClientIP([]string{"10.0.0.0/8"})
	hops := make([]string, 0, 1000)
	hops = append(hops, "198.51.100.7")
	for range 999 {
		hops = append(hops, "10.0.0.2")
	}
	// Past maxForwardHops trusted hops the walk stops at a trusted address
	// rather than scanning on.
	if got := c.From(request("10.0.0.1:1", strings.Join(hops, ","))); got != "10.0.0.2" {
		t.Errorf("From = %q, want the last trusted hop reached", got)
	}
}

func TestClientIPNoTrust(t *testing.T) {
	for _, c := range []*ClientIP{nil, mustClientIP(t, nil)} {
		if got := c.From(request("203.0.113.5:1", "1.2.3.4")); got != "203.0.113.5" {
			t.Errorf("%v: From = %q", c, got)
		}
	}
}

func mustClientIP(t *testing.T, cidrs []string) *ClientIP {
	t.Helper()
	c, err := NewClientIP(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientIPErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "not-an-ip", "", "10.0.0.1/8/2", "fe80::1%eth0", "300.1.1.1"} {
		_, err := NewClientIP([]string{"10.0.0.0/8", bad})
		if err == nil {
			t.Errorf("NewClientIP accepted %q", bad)
			continue
		}
		if !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("error %q does not name the bad entry %q", err, bad)
		}
	}
}

func TestAllowlist(t *testing.T) {
	a, err := ParseAllowlist([]string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"203.0.113.9":      true,
		"203.0.114.1":      false,
		"2001:db8:ffff::1": true,
		"2001:db9::1":      false,
		"198.51.100.7":     true,
		"198.51.100.8":     false,
		"192.0.2.55":       true, // from the IPv4-mapped entry
		"::ffff:192.0.2.1": true,
		"garbage":          false,
		"":                 false,
	} {
		if got := a.Contains(ip); got != want {
			t.Errorf("Contains(%q) = %v, want %v", ip, got, want)
		}
	}
	if a.Empty() {
		t.Error("non-empty list reports Empty")
	}

	var none Allowlist
	empty, err := ParseAllowlist(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []Allowlist{none, empty} {
		if !l.Contains("203.0.113.9") || !l.Contains("garbage") || !l.ContainsAddr(netip.Addr{}) || !l.Empty() {
			t.Error("empty allowlist does not allow everything")
		}
	}

	if _, err := ParseAllowlist([]string{"203.0.113.0/24", "203.0.113.0/99"}); err == nil || !strings.Contains(err.Error(), `"203.0.113.0/99"`) {
		t.Errorf("bad entry error = %v", err)
	}
}

func TestClientIPAddrNoAllocs(t *testing.T) {
	c := mustClientIP(t, []string{"10.0.0.0/8"})
	r := request("10.0.0.1:80", "198.51.100.7, 10.1.1.1")
	if n := testing.AllocsPerRun(100, func() { c.Addr(r) }); n != 0 {
		t.Errorf("Addr allocates %v times", n)
	}
}

// FuzzClientIP checks that no X-Forwarded-For value or peer address makes
// the resolver panic, return a non-canonical address, or let an untrusted
// peer choose the result.
func FuzzClientIP(f *testing.F) {
	for _, s := range []struct{ remote, xff string }{
		{"10.0.0.1:80", "198.51.100.7"},
		{"10.0.0.1:80", "198.51.100.7, 10.1.1.1"},
		{"10.0.0.1:80", "bogus, 198.51.100.7, unknown"},
		{"10.0.0.1:80", ",,, ,"},
		{"[fd00::1]:443", "[2001:db8::9]:1234, fd00::2"},
		{"[fd00::1]:443", "::ffff:1.2.3.4%eth0"},
		{"203.0.113.5:1", "10.0.0.1"},
		{"@", "1.2.3.4"},
		{"[::ffff:10.0.0.1]:80", "1.2.3.4:99999"},
		{"10.0.0.1:80", "[::1"},
		{"10.0.0.1:80", "1.2.3.4\t,\t5.6.7.8"},
	} {
		f.Add(s.remote, s.xff)
	}
	c, err := NewClientIP([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := request(remote, xff)
		got := c.From(r)
		if got == "" {
			if _, ok := parseHop(remote); ok {
				t.Fatalf("From(%q, %q) = \"\" for a valid peer", remote, xff)
			}
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil || a.String() != got || a.Is4In6() || a.Zone() != "" {
			t.Fatalf("From(%q, %q) = %q: not a canonical address", remote, xff, got)
		}
		peer, _ := parseHop(remote)
		if !c.trusts(peer) && a != peer {
			t.Fatalf("untrusted peer %q: From = %q, want the peer itself", remote, got)
		}
		if a == peer {
			return
		}
		// Otherwise the result must be one of the forwarded addresses.
		for _, e := range strings.Split(xff, ",") {
			if h, ok := parseHop(strings.Trim(e, " \t")); ok && h == a {
				return
			}
		}
		t.Fatalf("From(%q, %q) = %q, which is neither the peer nor in the header", remote, xff, got)
	})
}
