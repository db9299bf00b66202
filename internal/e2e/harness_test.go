// Package e2e drives the gateway end to end against real MCP peers: the
// reference "everything" server from the Node SDK project (over stdio and
// Streamable HTTP), the Node SDK client, and the go-sdk client.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// testGateway is an in-process gateway behind an httptest server.
type testGateway struct {
	*gateway.Gateway
	URL     string
	Metrics *telemetry.Metrics
}

func logger(t testing.TB) *slog.Logger {
	if os.Getenv("MCPEDGE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// startGateway parses a TOML config, starts a gateway on it and waits until
// every upstream has made its first attempt.
func startGateway(t testing.TB, toml string, opts ...func(*gateway.HTTPOptions)) *testGateway {
	t.Helper()
	return startGatewayWith(t, toml, nil, opts...)
}

// startGatewayWith is startGateway with a hook that sets the gateway up
// (SetDeferrer, say) before it starts.
func startGatewayWith(t testing.TB, toml string, before func(*gateway.Gateway), opts ...func(*gateway.HTTPOptions)) *testGateway {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	m := telemetry.NewMetrics()
	g := gateway.New(cfg, logger(t), m)
	// Sessions are kept in a store, as `mcpedge serve` keeps them: the
	// tests go through the path the binary serves sessions on
	// (internal/gateway/sessions.go).
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatalf("session store: %v", err)
	}
	g.SetSessionKeeper(sessionstore.New(st, sessionstore.Options{}))
	if before != nil {
		before(g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	ho := gateway.HTTPOptions{MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth}
	for _, o := range opts {
		o(&ho)
	}
	srv := httptest.NewServer(g.Handler(ho))
	t.Cleanup(func() {
		g.CloseSessions(context.Background())
		srv.Close()
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
		_ = st.Close()
	})
	g.WaitAttempted(ctx, 60*time.Second)
	waitLazyTools(t, g)
	return &testGateway{Gateway: g, URL: srv.URL, Metrics: m}
}

// waitLazyTools waits until every ready everything-server upstream lists the
// tools it registers only after initialization (it announces them with
// list_changed, which the gateway follows), so tests do not race that.
func waitLazyTools(t testing.TB, g *gateway.Gateway) {
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range g.Statuses() {
		if s.State != "ready" || s.ServerName != "mcp-servers/everything" {
			continue
		}
		u, _ := g.Upstream(s.Name)
		for time.Now().Before(deadline) {
			found := false
			for _, tl := range u.Catalog().Tools {
				if tl.Name == "trigger-sampling-request" {
					found = true
				}
			}
			if found {
				// The catalog is published just before it is registered on
				// the servers; give the registration its moment.
				time.Sleep(50 * time.Millisecond)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// everythingStdio returns a TOML upstream block for the everything server
// over stdio.
func everythingStdio(t testing.TB, name string, extra ...string) string {
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeclient.Check(root); err != nil {
		t.Fatal(err)
	}
	cmd, args := nodeclient.EverythingStdioCommand(root)
	return upstreamBlock(name, "stdio", "command = "+q(cmd)+"\nargs = "+qlist(args), extra...)
}

func upstreamBlock(name, transport, body string, extra ...string) string {
	return "\n[[upstreams]]\nname = " + q(name) + "\ntransport = " + q(transport) + "\n" + body + "\n" + strings.Join(extra, "\n") + "\n"
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

func qlist(l []string) string { b, _ := json.Marshal(l); return string(b) }

// goClient connects the go-sdk client to url with the given handlers.
func goClient(t testing.TB, url string, opts *mcp.ClientOptions, version string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e-go", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var so *mcp.ClientSessionOptions
	if version != "" {
		so = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, so)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func text(t testing.TB, res *mcp.CallToolResult) string {
	t.Helper()
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// closeFixture closes an in-process upstream when the test ends, bounded:
// httptest.Server.Close waits for every handler, and a fixture handler may
// still be waiting on a client that will never answer.
func closeFixture(t testing.TB, srv *httptest.Server) {
	t.Cleanup(func() {
		srv.CloseClientConnections()
		done := make(chan struct{})
		go func() { srv.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
	})
}
