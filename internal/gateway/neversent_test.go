package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// closedPort returns 127.0.0.1:<port> with nothing listening on it.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNeverSent classifies real errors: those that prove the request never
// left the gateway (dialing a closed port, directly, through net/http and
// through the MCP SDK's client transport; a DNS failure; a TLS handshake
// that failed; the gateway's own "unavailable") and those where bytes may
// have reached the upstream (a connection reset after the request was
// written, an upstream's answer, a timeout).
func TestNeverSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := closedPort(t)
	noRetry := &http.Client{Transport: &http.Transport{Proxy: nil}}

	_, dialErr := net.Dial("tcp", addr)
	_, httpErr := noRetry.Post("http://"+addr+"/mcp", "application/json", strings.NewReader("{}"))

	// The SDK's Streamable HTTP client, as the gateway uses it.
	client := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	_, sdkErr := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: "http://" + addr + "/mcp", HTTPClient: noRetry, MaxRetries: -1}, nil)

	res := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no name server reachable")
	}}
	_, dnsErr := res.LookupHost(ctx, "upstream.example")

	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	_, verifyErr := noRetry.Get(tlsSrv.URL) // the test server's certificate is not trusted
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	_, headerErr := noRetry.Get(strings.Replace(plain.URL, "http://", "https://", 1)) // TLS to a plain HTTP server

	// A server that reads the request and then resets the connection:
	// the request reached it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	_, resetErr := noRetry.Post("http://"+ln.Addr().String()+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0"}`))

	// A call on an SDK connection whose server already went away (a
	// stdio child that died before the supervisor noticed).
	srv := mcp.NewServer(&mcp.Implementation{Name: "s", Version: "1"}, nil)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := client.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = ss.Close()
	_ = cs.Wait()
	_, closedErr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "anything"})

	// A write to the stdin of a child that is gone: a pipe without reader.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	_, pipeErr := pw.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}` + "\n"))
	pw.Close()

	unavailable := fmt.Errorf("%w: search: connection lost: EOF", upstream.ErrUnavailable)

	never := map[string]error{
		"dial to a closed port":          dialErr,
		"POST to a closed port":          httpErr,
		"MCP connect to a closed port":   sdkErr,
		"DNS failure":                    dnsErr,
		"untrusted certificate":          verifyErr,
		"TLS to a plain server":          headerErr,
		"the gateway's own unavailable":  unavailable,
		"a write to a dead child's pipe": fmt.Errorf("calling \"tools/call\": %w", pipeErr),
		"a call on a closed connection":  closedErr,
		// What upstream.TrackSend makes of the read loop's bare EOF for
		// a call whose write then failed on a dead child's stdin.
		"EOF, the write having failed":    fmt.Errorf("%w (writing the request failed: %w)", fmt.Errorf("calling \"tools/call\": %w", io.EOF), pipeErr),
		"wrapped dial error (as jsonrpc)": fmt.Errorf("calling \"tools/call\": %w", dialErr),
	}
	for what, err := range never {
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if !neverSent(err) {
			t.Errorf("%s: %v (%T) classified maybe sent, want never sent", what, err, err)
		}
	}
	maybe := map[string]error{
		"reset after the request was written": resetErr,
		"EOF":                                 io.ErrUnexpectedEOF,
		"deadline":                            context.DeadlineExceeded,
		"connection closed mid-call":          fmt.Errorf("calling \"tools/call\": %w", mcp.ErrConnectionClosed),
	}
	for what, err := range maybe {
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if neverSent(err) {
			t.Errorf("%s: %v (%T) classified never sent, want maybe sent", what, err, err)
		}
	}
	if neverSent(nil) {
		t.Error("nil classified never sent")
	}
}
