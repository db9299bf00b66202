package gateway

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func interactiveServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "inter", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{Name: "elicit", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res, err := r.Session.Elicit(ctx, &mcp.ElicitParams{Message: "ok?", RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{}}})
			if err != nil {
				return nil, err
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.Action}}}, nil
		})
	s.AddTool(&mcp.Tool{Name: "progress", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			for i := range 3 {
				_ = r.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: r.Params.GetProgressToken(), Progress: float64(i + 1), Total: 3})
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	return s
}

// TestServerToClientNeedsStandaloneStream: the sink sends
// elicitation/sampling/roots requests and progress notifications with the
// *upstream's* context, which carries no client-side request id, so the SDK
// server writes them to the client's standalone GET stream instead of the
// POST stream of the request that caused them. A client that does not open
// the (optional) GET stream — which works against the upstream directly —
// loses progress and cannot answer elicitation through the gateway. With
// the GET stream, progress and the result travel on different HTTP streams,
// so their order is not guaranteed either (which settle() tries to paper
// over).
func TestServerToClientNeedsStandaloneStream(t *testing.T) {
	up := startHTTPUpstream(t, interactiveServer())
	_, url := startGateway(t, "[server]\n"+upstreamBlock("inter", up))
	noGET := func(tr *mcp.StreamableClientTransport) { tr.DisableStandaloneSSE = true }
	for _, tc := range []struct{ name, endpoint, prefix string }{
		{"direct", up, ""},
		{"gateway", url + "/mcp", "inter__"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var progress atomic.Int32
			cs := dialClient(t, tc.endpoint, &mcp.ClientOptions{
				ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{}}, nil
				},
				ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { progress.Add(1) },
			}, "2025-11-25", noGET)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.prefix + "elicit", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Errorf("elicitation round trip failed: %v %+v", err, res)
			}
			p := &mcp.CallToolParams{Name: tc.prefix + "progress", Arguments: map[string]any{}}
			p.SetProgressToken("tok")
			if _, err := cs.CallTool(ctx, p); err != nil {
				t.Fatal(err)
			}
			// Progress notifications may be handled after the result: wait
			// for them rather than for a fixed time.
			waitFor(t, "3 progress notifications", 5*time.Second, func() bool { return progress.Load() >= 3 })
			if progress.Load() != 3 {
				t.Errorf("got %d of 3 progress notifications", progress.Load())
			}
		})
	}
}

// TestRefreshWithdrawsToolsBriefly: catalogChanged handles every
// list_changed by unregisterLocked (RemoveTools of everything the upstream
// registered) and then AddTool one by one. The SDK server's tool table is
// not covered by g.mu, so a tools/call that arrives in between gets
// "unknown tool" for a tool that never went away. Upstreams that send
// list_changed often make this a steady error rate.
func TestRefreshWithdrawsToolsBriefly(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "churn", Version: "1"}, nil)
	schema := json.RawMessage(`{"type":"object","properties":{"a":{"type":"string"}}}`)
	h := func(ctx context.Context, r *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	}
	for i := range 300 {
		s.AddTool(&mcp.Tool{Name: "t" + itoa(i), InputSchema: schema}, h)
	}
	up := startHTTPUpstream(t, s)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("churn", up))
	cs := dialClient(t, url+"/mcp", nil, "2025-11-25")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	go func() { // an upstream whose catalog changes now and then
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			s.AddTool(&mcp.Tool{Name: "extra", InputSchema: schema}, h)
		}
	}()
	var failed, total int
	var lastErr error
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		total++
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "churn__t0", Arguments: map[string]any{}}); err != nil {
			failed++
			lastErr = err
		}
	}
	close(stop)
	if failed > 0 {
		t.Fatalf("%d of %d calls to an unchanged tool failed during catalog refreshes; last: %v", failed, total, lastErr)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
