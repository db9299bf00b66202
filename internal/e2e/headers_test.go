package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type headerRecorder struct {
	mu   sync.Mutex
	seen []http.Header
}

func (h *headerRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Header.Clone())
		h.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

type addHeaders struct {
	base http.RoundTripper
	h    map[string]string
}

func (a addHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range a.h {
		r.Header.Set(k, v)
	}
	return a.base.RoundTrip(r)
}

// TestHeadersAtTheBoundary checks what crosses the gateway in HTTP headers:
// the upstream gets its configured credentials and the client's request id,
// and never the client's own bearer token.
func TestHeadersAtTheBoundary(t *testing.T) {
	up := mcp.NewServer(&mcp.Implementation{Name: "recorder", Version: "1"}, nil)
	mcp.AddTool(up, &mcp.Tool{Name: "echo", Description: "echo"}, func(ctx context.Context, r *mcp.CallToolRequest, in struct {
		Message string `json:"message"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
	})
	rec := &headerRecorder{}
	upSrv := httptest.NewServer(rec.wrap(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return up }, nil)))
	closeFixture(t, upSrv) // after the gateway stops (cleanups run last-in first-out)

	t.Setenv("UPSTREAM_KEY", "upstream-secret")
	gw := startGateway(t, "[server]\n"+upstreamBlock("rec", "http", "url = "+q(upSrv.URL), `headers = { "X-Api-Key" = "${UPSTREAM_KEY}" }`),
		func(o *gateway.HTTPOptions) { o.Token = "client-token" })

	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	hc := &http.Client{Transport: addHeaders{base: http.DefaultTransport, h: map[string]string{"Authorization": "Bearer client-token", "X-Request-Id": "trace-abc-123"}}}
	ctx := ctxT(t, 20*time.Second)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: gw.URL + "/mcp", HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "rec__echo", Arguments: map[string]any{"message": "hdr"}})
	if err != nil || text(t, res) != "hdr" {
		t.Fatalf("call: %v %v", res, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var sawID bool
	for _, h := range rec.seen {
		if h.Get("Authorization") != "" {
			t.Errorf("upstream received the client's Authorization header %q", h.Get("Authorization"))
		}
		if h.Get("X-Api-Key") != "upstream-secret" {
			t.Errorf("upstream request without its configured credential: %v", h)
		}
		if h.Get("X-Request-Id") == "trace-abc-123" {
			sawID = true
		}
	}
	if !sawID {
		t.Errorf("the client's request id never reached the upstream")
	}
}
