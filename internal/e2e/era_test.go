package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestGoClientBothEras drives the gateway with the go-sdk client in the
// stateful 2025-11-25 era and in the stateless 2026-07-28 era, against the
// everything server (a 2025-era upstream), including a sampling round trip
// that the gateway must translate for the 2026 client.
func TestGoClientBothEras(t *testing.T) {
	gw := startGateway(t, "[server]\n"+everythingStdio(t, "everything"))
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			var sampled int
			cs := goClient(t, gw.URL+"/mcp", &mcp.ClientOptions{
				CreateMessageHandler: func(ctx context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					sampled++
					return &mcp.CreateMessageResult{Model: "go-test", Role: "assistant", Content: &mcp.TextContent{Text: "sampled-by-go"}}, nil
				},
			}, version)
			ctx := ctxT(t, 30*time.Second)
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Errorf("negotiated %s, want %s", got, version)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__echo", Arguments: map[string]any{"message": "era " + version}})
			if err != nil {
				t.Fatalf("echo: %v", err)
			}
			if got := text(t, res); got != "Echo: era "+version {
				t.Errorf("echo text = %q", got)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "everything__trigger-sampling-request", Arguments: map[string]any{"prompt": "hi"}})
			if err != nil {
				t.Fatalf("sampling tool: %v", err)
			}
			if !strings.Contains(text(t, res), "sampled-by-go") || sampled != 1 {
				t.Errorf("sampling round trip: handler called %d times, result %q", sampled, text(t, res))
			}
		})
	}
}
