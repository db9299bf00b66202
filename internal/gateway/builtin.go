package gateway

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// builtinStatus is the aggregated name of the gateway's own status tool. It
// is reserved: an upstream tool that would take this name is refused.
const builtinStatus = "mcpedge__status"

// statusOutput is the structured result of the status tool.
type statusOutput struct {
	Upstreams []UpstreamStatus `json:"upstreams"`
	// Queue is the offline queue's health (queueres.go), when reported.
	Queue *QueueHealth `json:"queue,omitempty"`
}

// addBuiltins registers the gateway's own tools on /mcp. They answer from
// the gateway's memory, so they work with no upstreams at all.
func (g *Gateway) addBuiltins() {
	schema := json.RawMessage(`{"type":"object","properties":{}}`)
	g.agg.AddTool(&mcp.Tool{
		Name:        builtinStatus,
		Title:       "Gateway status",
		Description: "Lists the gateway's upstream MCP servers with their state (connecting, ready, failed), last error, and how many tools, prompts and resources each offers; and the offline queue's health (open, entries against its bounds, calls waiting and the oldest one's age).",
		InputSchema: schema,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(bool)},
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		out := statusOutput{Upstreams: g.Statuses(), Queue: g.queueHealthNow()}
		if out.Upstreams == nil {
			out.Upstreams = []UpstreamStatus{}
		}
		text, err := json.Marshal(out)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{
			Content:           []mcp.Content{&mcp.TextContent{Text: string(text)}},
			StructuredContent: out,
		}, nil
	})
}
