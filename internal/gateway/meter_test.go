package gateway

import (
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

// countLog is a meter that keeps what it was told.
type countLog struct {
	mu  sync.Mutex
	got []string // "upstream/tool/outcome"
}

func (c *countLog) Count(_ *principal.Principal, upstream, tool, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, upstream+"/"+tool+"/"+outcome)
}

func (c *countLog) since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[n:])
}

func (c *countLog) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestMeterWiring: the meter stage runs right below audit, for tools/call
// only, in both modes, and only when a meter is set.
func TestMeterWiring(t *testing.T) {
	g := New(config.Default(), slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	stages := func(m string) []string { return g.pipe.chain.Load().Stages(m) }
	if slices.Contains(stages(pipeline.MethodCallTool), "meter") {
		t.Fatal("meter compiled without a meter")
	}
	g.SetMeter(&countLog{})
	if got := stages(pipeline.MethodCallTool); got[0] != "meter" {
		t.Fatalf("single-user without an audit recorder: %v", got)
	}
	g.SetCallAudit(nopRecorder{})
	if got := stages(pipeline.MethodCallTool); !slices.Equal(got[:3], []string{"audit", "meter", "dispatch"}) {
		t.Fatalf("single-user: %v", got)
	}
	g.SetSecurity(&secFake{})
	if got := stages(pipeline.MethodCallTool); !slices.Equal(got[:3], []string{"audit", "meter", "authorize"}) {
		t.Fatalf("multi-tenant: %v", got)
	}
	if got := stages(pipeline.MethodGetPrompt); slices.Contains(got, "meter") {
		t.Fatalf("prompts/get is metered: %v", got)
	}
}

// TestMeterCountsOnceOnBothPaths: a tool call is counted exactly once,
// with the upstream, the tool's own name and the outcome, whether it
// takes the hot path or goes through the SDK server; a call of a tool
// that does not exist is counted without its name (and on /mcp, where no
// upstream owns it, without an upstream).
func TestMeterCountsOnceOnBothPaths(t *testing.T) {
	up := startHTTPUpstream(t, catalogueUpstream())
	hot, sdk := &countLog{}, &countLog{}
	gHot, urlHot := hotGateway(t, upstreamBlock("cat", up), true, func(g *Gateway) { g.SetMeter(hot) }, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("cat", up), false, func(g *Gateway) { g.SetMeter(sdk) }, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	for _, ep := range []struct{ path, prefix, unknown string }{{"/mcp", "cat__", "//error"}, {"/mcp/cat", "", "cat//error"}} {
		ch := newRawClientWith(t, urlHot+ep.path, "", `{}`)
		cs := newRawClientWith(t, urlSDK+ep.path, "", `{}`)
		for i, tc := range []struct{ tool, args, want string }{
			{"text", `{"a":1}`, "cat/text/ok"},
			{"fails", `{}`, "cat/fails/error"},
			{"rpcerror", `{}`, "cat/rpcerror/error"},
			{"nonesuch", `{}`, ep.unknown},
		} {
			params := `{"name":"` + ep.prefix + tc.tool + `","arguments":` + tc.args + `}`
			nh, ns := hot.len(), sdk.len()
			ch.callTool(i, params)
			cs.callTool(i, params)
			if got := hot.since(nh); len(got) != 1 || got[0] != tc.want {
				t.Errorf("%s %s, hot path: counted %v, want [%s]", ep.path, tc.tool, got, tc.want)
			}
			if got := sdk.since(ns); len(got) != 1 || got[0] != tc.want {
				t.Errorf("%s %s, SDK path: counted %v, want [%s]", ep.path, tc.tool, got, tc.want)
			}
		}
	}
}
