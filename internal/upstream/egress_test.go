package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/egress"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpServer is a Streamable HTTP MCP server on 127.0.0.1 with one tool,
// "ping". It counts the requests it gets and keeps their headers.
type mcpServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits []http.Header
}

func newMCPServer(t *testing.T, wrap func(http.Handler) http.Handler) *mcpServer {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "egress-test", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "ping", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil
		})
	// The SDK's own rebinding protection would refuse the test's names on
	// a loopback listener; the gateway's policy is what is tested here.
	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
	if wrap != nil {
		h = wrap(h)
	}
	m := &mcpServer{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		m.hits = append(m.hits, r.Header.Clone())
		m.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *mcpServer) requests() []http.Header {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]http.Header(nil), m.hits...)
}

func (m *mcpServer) port() string {
	u, _ := url.Parse(m.URL)
	return u.Port()
}

// startWith is startUpstream with options, not waiting for any state.
func startWith(t *testing.T, toml string, opts *Options) *Upstream {
	t.Helper()
	cfg, err := config.Parse("t.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	u := New(cfg.Upstreams[0], opts)
	u.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u.Stop(ctx)
	})
	return u
}

// waitState waits for the upstream to reach a state; it returns the last
// status either way.
func waitState(u *Upstream, want State, within time.Duration) (Status, bool) {
	deadline := time.Now().Add(within)
	for {
		s := u.Status()
		if s.State == want {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func callPing(t *testing.T, u *Upstream) {
	t.Helper()
	cs, err := u.Session(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("ping: %+v %v", res, err)
	}
}

// TestEgressLoopbackLiteralWorks: an upstream configured on a loopback
// address may dial loopback, with no allow_private — as every test and
// benchmark upstream is.
func TestEgressLoopbackLiteralWorks(t *testing.T) {
	s := newMCPServer(t, nil)
	u := startWith(t, fmt.Sprintf("[[upstreams]]\nname = \"lo\"\nurl = \"http://127.0.0.1:%s/mcp\"\n", s.port()), nil)
	if st, ok := waitState(u, StateReady, 20*time.Second); !ok {
		t.Fatalf("not ready: %+v", st)
	}
	callPing(t, u)
}

// TestEgressNameResolvingToLoopbackRefused: the same server reached by a
// name that resolves to 127.0.0.1 is refused at connect — the check is on
// the address dialled, after resolution — and nothing reaches it. With
// allow_private naming loopback, the same name and resolver work (so the
// refusal is the policy's, not the resolver's). A rebinding (the name
// moving to a forbidden address between connects) is refused the same way.
func TestEgressNameResolvingToLoopbackRefused(t *testing.T) {
	s := newMCPServer(t, nil)
	res := newTestResolver(map[string]string{"mcp.rebind.test": "127.0.0.1", "mcp6.rebind.test": "::ffff:127.0.0.1"})
	opts := &Options{Resolver: res.Resolver, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

	for _, host := range []string{"mcp.rebind.test", "mcp6.rebind.test"} {
		u := startWith(t, fmt.Sprintf("[[upstreams]]\nname = \"rb\"\nurl = \"http://%s:%s/mcp\"\n", host, s.port()), opts)
		st, ok := waitState(u, StateFailed, 20*time.Second)
		if !ok {
			t.Fatalf("%s: %+v, want failed", host, st)
		}
		// (The resolver hands out an IPv4-mapped address as the IPv4 one.)
		want := fmt.Sprintf(`upstream "rb": refusing to connect to 127.0.0.1:%s (loopback address); allow it with allow_private = ["127.0.0.1/32"] if you mean it`, s.port())
		if !strings.Contains(st.LastError, want) {
			t.Errorf("%s: last error %q\nwant it to contain %q", host, st.LastError, want)
		}
		if strings.Contains(st.LastError, "no answer to initialize") {
			t.Errorf("%s: a refused dial is reported as a timeout: %q", host, st.LastError)
		}
		if res.count(host) == 0 {
			t.Errorf("%s was never resolved: the test resolver is not in use", host)
		}
		u.Stop(context.Background())
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("the server got %d requests through refused dials", n)
	}

	u := startWith(t, fmt.Sprintf("[[upstreams]]\nname = \"rb\"\nurl = \"http://mcp.rebind.test:%s/mcp\"\nallow_private = [\"127.0.0.0/8\"]\n", s.port()), opts)
	if st, ok := waitState(u, StateReady, 20*time.Second); !ok {
		t.Fatalf("with allow_private: %+v, want ready", st)
	}
	callPing(t, u)

	// Rebinding: the name now resolves to the metadata address; the next
	// connection (a per-session one here) is refused, with no network.
	res.set("mcp.rebind.test", "169.254.169.254")
	u.opts.HTTPClient.CloseIdleConnections()
	_, err := u.opts.HTTPClient.Get(fmt.Sprintf("http://mcp.rebind.test:%s/mcp", s.port()))
	var re *egress.RefusedError
	if !errors.As(err, &re) || re.Class != egress.Metadata {
		t.Fatalf("after rebinding: %v, want the metadata address refused", err)
	}
}

// TestEgressRedirectNotFollowed: an upstream that answers with a 307 to
// another port (another origin) is not followed, and the second server
// sees nothing — not the call, not the configured headers. A redirect
// within the origin is followed.
func TestEgressRedirectNotFollowed(t *testing.T) {
	other := newMCPServer(t, nil)
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(moved.Close)

	const headers = "headers = { Authorization = \"Bearer upstream-secret\", X-Api-Key = \"key-secret\" }\n"
	u := startWith(t, "[[upstreams]]\nname = \"moved\"\nurl = \""+moved.URL+"/mcp\"\n"+headers,
		&Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	st, ok := waitState(u, StateFailed, 20*time.Second)
	if !ok {
		t.Fatalf("%+v, want failed", st)
	}
	if want := "redirected to " + egress.Origin(mustURL(other.URL)) + "; redirects to another origin are not followed"; !strings.Contains(st.LastError, want) {
		t.Errorf("last error %q\nwant it to contain %q", st.LastError, want)
	}
	for _, h := range other.requests() {
		t.Errorf("the other server got a request (Authorization %q, X-Api-Key %q)", h.Get("Authorization"), h.Get("X-Api-Key"))
	}

	// Within the origin: /old redirects to /mcp on the same server.
	same := newMCPServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/old" {
				http.Redirect(w, r, "/mcp", http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	u2 := startWith(t, "[[upstreams]]\nname = \"same\"\nurl = \""+same.URL+"/old\"\n"+headers, nil)
	if st, ok := waitState(u2, StateReady, 20*time.Second); !ok {
		t.Fatalf("same-origin redirect: %+v, want ready", st)
	}
	callPing(t, u2)
	for _, h := range same.requests() {
		if h.Get("X-Api-Key") != "key-secret" {
			t.Errorf("a request within the origin lacks the configured header: %v", h)
		}
	}
}

// TestEgressHotPathRedirect: the hot path posts with the upstream's client
// directly (no header transport); a cross-origin redirect of a tools/call
// is refused there too, and the other server sees nothing.
func TestEgressHotPathRedirect(t *testing.T) {
	other := newMCPServer(t, nil)
	s := newMCPServer(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte(`"tools/call"`)) {
				http.Redirect(w, r, other.URL+"/mcp", http.StatusTemporaryRedirect)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	})
	u := startWith(t, "[[upstreams]]\nname = \"hot\"\nurl = \""+s.URL+"/mcp\"\nheaders = { X-Api-Key = \"key-secret\" }\n", nil)
	if st, ok := waitState(u, StateReady, 20*time.Second); !ok {
		t.Fatalf("%+v, want ready", st)
	}
	cs, err := u.Session(context.Background(), "")
	if err != nil || !u.CanPost(cs) {
		t.Fatalf("session: %v, can post %v", err, u.CanPost(cs))
	}
	resp, err := u.Post(context.Background(), cs, []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ping","arguments":{}}}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("hot-path post answered %s, want the redirect refused", resp.Status)
	}
	var re *egress.RedirectError
	if !errors.As(err, &re) {
		t.Fatalf("hot-path post: %v, want a *egress.RedirectError", err)
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("the other server got %d requests", n)
	}
}

// TestEgressSSEEndpointElsewhere: a legacy SSE server whose endpoint event
// names another origin is not posted to; the other server sees nothing.
func TestEgressSSEEndpointElsewhere(t *testing.T) {
	other := newMCPServer(t, nil)
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: endpoint\ndata: %s/messages?sessionid=1\n\n", other.URL)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(sse.Close)
	u := startWith(t, "[[upstreams]]\nname = \"legacy\"\ntransport = \"sse\"\nurl = \""+sse.URL+"/sse\"\nheaders = { Authorization = \"Bearer upstream-secret\" }\n",
		&Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	st, ok := waitState(u, StateFailed, 20*time.Second)
	if !ok {
		t.Fatalf("%+v, want failed", st)
	}
	// Each attempt fails at the refusal, but the SDK client closing after
	// it can be the error an attempt leaves last: wait (bounded) for an
	// attempt that reports the refusal itself.
	want := "refusing to send a request to " + egress.Origin(mustURL(other.URL))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(st.LastError, want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st = u.Status()
	}
	if !strings.Contains(st.LastError, want) {
		t.Errorf("last error %q\nwant it to contain %q", st.LastError, want)
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("the other server got %d requests", n)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
