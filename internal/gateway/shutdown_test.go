package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"log/slog"
)

// TestShutdownStrandsCallsThatNeedTheClient replays the sequence of
// cmd/mcpedge/serve.go:shutdown (srv.Shutdown in the background, g.Drain,
// g.CloseSessions). srv.Shutdown closes the listener and idle connections
// at once, so a call in flight that is waiting for the client's answer to
// an elicitation/sampling/roots request (or, for a 2026 client, for the
// retry carrying inputResponses) can never get that answer in: the client's
// POST has no connection to arrive on. Drain then waits out the whole grace
// period for a call that cannot finish, and the call fails anyway.
func TestShutdownStrandsCallsThatNeedTheClient(t *testing.T) {
	up := startHTTPUpstream(t, interactiveServer())
	cfg, err := config.Parse("review.toml", []byte("[server]\n"+upstreamBlock("inter", up)))
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	g.Start(context.Background())
	t.Cleanup(func() {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		g.Stop(ctx)
	})
	g.WaitAttempted(context.Background(), 10*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: g.Handler(HTTPOptions{MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	asked := make(chan struct{})
	shuttingDown := make(chan struct{})
	cs := dialClient(t, "http://"+ln.Addr().String()+"/mcp", &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			close(asked)
			<-shuttingDown // the user answers a moment after SIGTERM
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{}}, nil
		},
	}, "2025-11-25")
	callErr := make(chan error, 1)
	go func() {
		ctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "inter__elicit", Arguments: map[string]any{}})
		callErr <- err
	}()
	<-asked

	// shutdown(srv, g, grace, log) from cmd/mcpedge/serve.go, grace 3s.
	grace := 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	// The new order (cmd/mcpedge/serve.go:shutdown): Drain first, with the
	// listener still open, so clients can still answer.
	time.Sleep(50 * time.Millisecond)
	close(shuttingDown)
	g.Drain(ctx)
	drained := time.Since(start)
	// Drain returns once the gateway has ended the call; its answer then
	// still has to travel to the client, so wait for it (bounded).
	var err2 error
	select {
	case err2 = <-callErr:
	case <-time.After(5 * time.Second):
		err2 = errors.New("still waiting 5s after Drain returned")
	}
	// (Not calling g.CloseSessions here: see TestCloseSessionsHangsOnPendingElicitation.)
	if err2 != nil || drained >= grace {
		t.Fatalf("the client answered 50ms into shutdown, yet Drain took %s (grace %s) and the call: %v", drained.Round(time.Millisecond), grace, err2)
	}
}

// TestCloseSessionsHangsOnPendingElicitation: ServerSession.Close
// (jsonrpc2.Connection.Close) waits for the session's outgoing calls, and
// the sink's ss.Elicit/CreateMessageWithTools/ListRoots run with the
// upstream request's context, which nothing on the gateway side cancels.
// So CloseSessions (which takes no context) blocks for as long as a client
// sits on an elicitation — in cmd/mcpedge/serve.go:shutdown that is after
// the grace period, before g.Stop: SIGTERM never finishes.
func TestCloseSessionsHangsOnPendingElicitation(t *testing.T) {
	up := startHTTPUpstream(t, interactiveServer())
	g, url := startGatewayOpts(t, "[server]\n"+upstreamBlock("inter", up), false)
	asked := make(chan struct{})
	release := make(chan struct{})
	cs := dialClient(t, url+"/mcp", &mcp.ClientOptions{
		ElicitationHandler: func(ctx context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			close(asked)
			select { // a user who has walked away
			case <-release:
			case <-ctx.Done():
			}
			return nil, errors.New("gone")
		},
	}, "2025-11-25")
	t.Cleanup(func() { close(release) }) // runs before the client's Close
	go func() {
		ctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "inter__elicit", Arguments: map[string]any{}})
	}()
	<-asked
	closed := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		g.CloseSessions(ctx)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseSessions has not returned after 5s: ServerSession.Close waits for the pending elicitation/create")
	}
}
