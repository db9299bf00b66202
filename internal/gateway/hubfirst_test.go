package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serverWith is an upstream MCP server whose tools say who they are in
// their description.
func serverWith(who string, tools ...string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: who, Version: "1"}, nil)
	for _, name := range tools {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: who}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: who}}}, nil, nil
		})
	}
	return s
}

func descriptions(t *testing.T, cs *mcp.ClientSession) map[string]string {
	t.Helper()
	out := map[string]string{}
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		out[tool.Name] = tool.Description
	}
	return out
}

// TestHubLocalFirst: an edge's own tool takes its name from the hub's,
// whether the hub registered it first or not, and the hub going down
// does not take the local tool with it.
func TestHubLocalFirst(t *testing.T) {
	hubURL := startHTTPUpstream(t, serverWith("hub", "shared__echo", "ev__only"))
	localURL := startHTTPUpstream(t, serverWith("local", "echo"))
	empty := ""
	hubUp := config.Upstream{Name: HubUpstream, Transport: config.TransportHTTP, URL: hubURL, Prefix: &empty,
		Timeout: config.Duration(5 * time.Second), ConnectTimeout: config.Duration(5 * time.Second), Isolation: config.IsolationShared}
	onlyHub, err := config.Parse("edge.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	onlyHub.Upstreams = append(onlyHub.Upstreams, hubUp)
	both, err := config.Parse("edge.toml", []byte(upstreamBlock("shared", localURL)))
	if err != nil {
		t.Fatal(err)
	}
	both.Upstreams = append(both.Upstreams, hubUp)

	g, gw, ctx := startTestGateway(t, onlyHub, true, nil)
	cs := dialClient(t, gw+"/mcp", nil, "2025-11-25")
	if d := descriptions(t, cs); d["shared__echo"] != "hub" || d["ev__only"] != "hub" {
		t.Fatalf("the hub alone: %v", d)
	}

	// The local upstream arrives after the hub registered the name.
	g.Apply(ctx, both)
	if !waitFor(t, "local takes the name", 20*time.Second, func() bool {
		d := descriptions(t, cs)
		return d["shared__echo"] == "local" && d["ev__only"] == "hub"
	}) {
		t.Fatalf("after the local upstream came: %v", descriptions(t, cs))
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "shared__echo"})
	if err != nil || res.Content[0].(*mcp.TextContent).Text != "local" {
		t.Fatalf("shared__echo answered by %v %v", res, err)
	}
	var conflicts []string
	for _, s := range g.Statuses() {
		if s.Name == HubUpstream {
			conflicts = s.Conflicts
		}
	}
	if len(conflicts) != 1 {
		t.Errorf("hub conflicts: %q", conflicts)
	}

	// The hub goes away: its own tools go, the local one stays.
	g.Apply(ctx, withoutHub(both))
	if !waitFor(t, "hub gone", 20*time.Second, func() bool { _, ok := descriptions(t, cs)["ev__only"]; return !ok }) {
		t.Fatalf("after the hub left: %v", descriptions(t, cs))
	}
	if d := descriptions(t, cs); d["shared__echo"] != "local" {
		t.Errorf("the local tool after the hub left: %v", d)
	}

	// The hub comes back: its own tools return, the clashing name stays
	// local.
	g.Apply(ctx, onlyHubWith(both, hubUp, "x"))
	if !waitFor(t, "hub back", 20*time.Second, func() bool { return descriptions(t, cs)["ev__only"] == "hub" }) {
		t.Fatalf("after the hub reconnected: %v", descriptions(t, cs))
	}
	if d := descriptions(t, cs); d["shared__echo"] != "local" {
		t.Errorf("after the hub reconnected: %v", d)
	}
}

// onlyHubWith is cfg with the hub upstream changed (a header), which
// reconnects it.
func onlyHubWith(cfg *config.Config, hub config.Upstream, v string) *config.Config {
	c := *cfg
	hub.Headers = map[string]string{"X-Test": v}
	c.Upstreams = append(append([]config.Upstream(nil), withoutHub(cfg).Upstreams...), hub)
	return &c
}

func withoutHub(cfg *config.Config) *config.Config {
	c := *cfg
	c.Upstreams = nil
	for _, u := range cfg.Upstreams {
		if u.Name != HubUpstream {
			c.Upstreams = append(c.Upstreams, u)
		}
	}
	return &c
}
