package upstream

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/tlsconf/tlstest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestUpstreamTLS: an HTTPS upstream with a private CA that requires a
// client certificate is reached with [upstreams.tls] — through the egress
// policy, which still judges the address dialled — and refused without
// the CA or without the certificate.
func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "upstream CA")
	gwCA := tlstest.NewCA(t, "gateway clients CA")
	sc, sk, _ := ca.Issue(t, tlstest.Leaf{CN: "mcp", DNS: []string{"mcp.tls.test"}})
	pair, err := tls.X509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "tls-test", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil
		})
	var mu sync.Mutex
	var clients []string
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		clients = append(clients, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: tlstest.Pool(gwCA), MinVersion: tls.VersionTLS13}
	hs.StartTLS()
	defer hs.Close()
	su, _ := url.Parse(hs.URL)
	_, port, _ := net.SplitHostPort(su.Host)

	caFile := tlstest.Write(t, dir, "ca.pem", ca.PEM)
	cc, ck, _ := gwCA.Issue(t, tlstest.Leaf{CN: "gateway-1", Client: true})
	certFile, keyFile := tlstest.Write(t, dir, "c.pem", cc), tlstest.Write(t, dir, "k.pem", ck)
	res := newTestResolver(map[string]string{"mcp.tls.test": "127.0.0.1"})
	opts := &Options{Resolver: res.Resolver, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	base := fmt.Sprintf("[[upstreams]]\nname = \"secure\"\nurl = \"https://mcp.tls.test:%s/mcp\"\n", port)
	allow := "allow_private = [\"127.0.0.1/32\"]\n"

	t.Run("ca and client certificate", func(t *testing.T) {
		u := startWith(t, base+allow+fmt.Sprintf("[upstreams.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", caFile, certFile, keyFile), opts)
		if st, ok := waitState(u, StateReady, 20*time.Second); !ok {
			t.Fatalf("not ready: %+v", st)
		}
		callPing(t, u)
		mu.Lock()
		defer mu.Unlock()
		if len(clients) == 0 || clients[len(clients)-1] != "gateway-1" {
			t.Fatalf("the server saw client certificates %v", clients)
		}
	})
	for _, c := range []struct{ name, toml, want string }{
		{"no ca_file", base + allow, "certificate signed by unknown authority"},
		{"no client certificate", base + allow + fmt.Sprintf("[upstreams.tls]\nca_file = %q\n", caFile), "certificate required"},
		{"missing ca_file", base + allow + fmt.Sprintf("[upstreams.tls]\nca_file = %q\n", dir+"/nope.pem"), "upstreams.secure.tls.ca_file: " + dir + "/nope.pem does not exist"},
		// TLS composes with the egress policy: the name resolves to
		// loopback, which is refused without allow_private.
		{"egress policy", base + fmt.Sprintf("[upstreams.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", caFile, certFile, keyFile), "refusing to connect to 127.0.0.1:" + port + " (loopback address)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := startWith(t, c.toml, opts)
			st, ok := waitState(u, StateFailed, 20*time.Second)
			if !ok || !strings.Contains(st.LastError, c.want) {
				t.Fatalf("status %+v, want failed with %q", st, c.want)
			}
		})
	}
}
