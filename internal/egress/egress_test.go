package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want Class
	}{
		{"8.8.8.8", Public},
		{"1.1.1.1", Public},
		{"2606:4700:4700::1111", Public},
		{"127.0.0.1", Loopback},
		{"127.255.255.254", Loopback},
		{"::1", Loopback},
		{"::ffff:127.0.0.1", Loopback},
		{"10.0.0.1", Private},
		{"172.16.0.1", Private},
		{"172.31.255.255", Private},
		{"172.32.0.1", Public},
		{"192.168.1.1", Private},
		{"::ffff:10.1.2.3", Private},
		{"100.64.0.1", CGNAT},
		{"100.127.255.255", CGNAT},
		{"100.128.0.1", Public},
		{"169.254.1.1", LinkLocal},
		{"fe80::1", LinkLocal},
		{"fe80::1%eth0", LinkLocal},
		{"169.254.169.254", Metadata},
		{"::ffff:169.254.169.254", Metadata},
		{"::ffff:a9fe:a9fe", Metadata},
		{"64:ff9b::a9fe:a9fe", Metadata}, // NAT64 of the metadata address
		{"2002:a9fe:a9fe::1", Metadata},  // 6to4 of it
		{"2002:0808:0808::1", Public},    // 6to4 of a public address
		{"64:ff9b::808:808", Public},
		{"64:ff9b::a00:1", Private},
		{"fd00:ec2::254", Metadata},
		{"169.254.170.2", Metadata},
		{"100.100.100.200", Metadata},
		{"fd00::1", UniqueLocal},
		{"fc00::1", UniqueLocal},
		{"0.0.0.0", Unspecified},
		{"0.1.2.3", Unspecified},
		{"::", Unspecified},
		{"::ffff:0.0.0.0", Unspecified},
		{"224.0.0.1", Multicast},
		{"239.255.255.250", Multicast},
		{"ff02::1", Multicast},
		{"255.255.255.255", Reserved},
		{"240.0.0.1", Reserved},
		{"::127.0.0.1", Reserved}, // IPv4-compatible: deprecated, not loopback
		{"198.18.0.1", Reserved},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr)
		if got := Classify(a); got != tc.want {
			t.Errorf("Classify(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := Classify(netip.Addr{}); got != Unspecified {
		t.Errorf("Classify(zero) = %s, want unspecified", got)
	}
}

func TestPolicyAllowed(t *testing.T) {
	allowMeta := []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name   string
		p      Policy
		addr   string
		wantOK bool
	}{
		{"public", Policy{}, "93.184.216.34", true},
		{"loopback refused", Policy{}, "127.0.0.1", false},
		{"mapped loopback refused", Policy{}, "::ffff:127.0.0.1", false},
		{"loopback allowed", Policy{Loopback: true}, "127.0.0.1", true},
		{"loopback allows ::1", Policy{Loopback: true}, "::1", true},
		{"loopback is not private", Policy{Loopback: true}, "10.0.0.1", false},
		{"private refused", Policy{}, "192.168.0.10", false},
		{"allow range", Policy{Allow: allowMeta}, "10.9.8.7", true},
		{"allow range, mapped", Policy{Allow: allowMeta}, "::ffff:10.9.8.7", true},
		{"allow exact metadata", Policy{Allow: allowMeta}, "169.254.169.254", true},
		{"allow exact metadata, mapped", Policy{Allow: allowMeta}, "::ffff:169.254.169.254", true},
		{"allow is exact", Policy{Allow: allowMeta}, "169.254.169.253", false},
		{"a range never allows metadata", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}, "169.254.169.254", false},
		{"a range allows the rest of link-local", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}, "169.254.10.1", true},
		{"everything is not metadata", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}, "fd00:ec2::254", false},
		{"everything allows private", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, "10.1.1.1", true},
		{"metadata v6 named", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("fd00:ec2::254/128")}}, "fd00:ec2::254", true},
		{"metadata refused", Policy{}, "169.254.169.254", false},
		{"trusted private", Policy{Trusted: true}, "10.0.0.1", true},
		{"trusted cgnat", Policy{Trusted: true}, "100.64.1.1", true},
		{"trusted link-local", Policy{Trusted: true}, "169.254.10.10", true},
		{"trusted unique-local", Policy{Trusted: true}, "fd12::1", true},
		{"trusted loopback", Policy{Trusted: true}, "127.0.0.1", true},
		{"trusted metadata refused", Policy{Trusted: true}, "169.254.169.254", false},
		{"trusted metadata v6 refused", Policy{Trusted: true}, "fd00:ec2::254", false},
		{"trusted mapped metadata refused", Policy{Trusted: true}, "::ffff:169.254.169.254", false},
		{"trusted unspecified refused", Policy{Trusted: true}, "0.0.0.0", false},
		{"trusted multicast refused", Policy{Trusted: true}, "224.0.0.251", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ok := tc.p.Allowed(netip.MustParseAddr(tc.addr))
			if ok != tc.wantOK {
				t.Errorf("Allowed(%s) = %v, want %v", tc.addr, ok, tc.wantOK)
			}
		})
	}
}

func TestRefusedErrorTellsHowToAllow(t *testing.T) {
	p := ForUpstream("x", "http://metadata.example/", nil)
	err := p.Check(netip.MustParseAddrPort("169.254.169.254:80"))
	want := `upstream "x": refusing to connect to 169.254.169.254:80 (link-local/metadata address: cloud instance metadata and credentials); allow it with allow_private = ["169.254.169.254/32"] if you mean it`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	err = p.Check(netip.MustParseAddrPort("[::ffff:10.1.2.3]:443"))
	if err == nil || !strings.Contains(err.Error(), `allow_private = ["10.1.2.3/32"]`) {
		t.Errorf("mapped address: %v, want the IPv4 /32 suggested", err)
	}
	hub := &Policy{Who: "hub", Trusted: true}
	err = hub.Check(netip.MustParseAddrPort("[fd00:ec2::254]:80"))
	if err == nil || !strings.Contains(err.Error(), "never dialled") || strings.Contains(err.Error(), "allow_private") {
		t.Errorf("hub: %v, want a refusal without an allow hint", err)
	}
}

func TestForUpstreamLoopback(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:8080/mcp", true},
		{"http://127.1.2.3/mcp", true},
		{"http://[::1]:9/mcp", true},
		{"http://localhost:3000/mcp", true},
		{"http://LOCALHOST/mcp", true},
		{"http://localhost./mcp", false},
		{"http://foo.localhost/mcp", false},
		{"http://10.0.0.1/mcp", false},
		{"https://mcp.example.com/mcp", false},
	} {
		if got := ForUpstream("u", tc.url, nil).Loopback; got != tc.want {
			t.Errorf("ForUpstream(%s).Loopback = %v, want %v", tc.url, got, tc.want)
		}
	}
}

// TestDialerRefusesBeforeConnecting dials real sockets on loopback: the
// policy's check runs on the resolved address, and a refusal is a dial
// error (net.OpError, Op "dial") wrapping a *RefusedError.
func TestDialerRefusesBeforeConnecting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	refuse := (&Policy{Who: `upstream "t"`, AllowKey: "allow_private"}).Dialer(&net.Dialer{})
	_, err = refuse.DialContext(ctx, "tcp", ln.Addr().String())
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("refused dial: %v, want a *net.OpError with Op dial", err)
	}
	var re *RefusedError
	if !errors.As(err, &re) || re.Class != Loopback {
		t.Fatalf("refused dial: %v, want a *RefusedError for loopback", err)
	}
	select {
	case <-accepted:
		t.Fatal("the refused dial reached the listener")
	case <-time.After(100 * time.Millisecond):
	}

	var ran bool
	allow := (&Policy{Loopback: true}).Dialer(&net.Dialer{Control: func(string, string, syscall.RawConn) error { ran = true; return nil }})
	c, err := allow.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	c.Close()
	if !ran {
		t.Error("the dialer's own control function did not run")
	}
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the allowed dial did not reach the listener")
	}

	// No network needed: the refusal comes before any packet is sent.
	_, err = refuse.DialContext(ctx, "tcp", "169.254.169.254:80")
	if !errors.As(err, &re) || re.Class != Metadata {
		t.Fatalf("metadata dial: %v, want refused", err)
	}
}
