package meter

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type counted struct {
	p                       *principal.Principal
	upstream, tool, outcome string
}

type memCounter struct {
	mu  sync.Mutex
	got []counted
}

func (m *memCounter) Count(p *principal.Principal, upstream, tool, outcome string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, counted{p, upstream, tool, outcome})
}

func TestStageCountsEveryOutcomeOnce(t *testing.T) {
	owner := &principal.Principal{Kind: principal.KindKey, ID: "k1", TenantID: "t1"}
	for _, tc := range []struct {
		name    string
		res     mcp.Result
		err     error
		refuse  bool
		outcome string
	}{
		{"ok", &mcp.CallToolResult{}, nil, false, "ok"},
		{"tool error", &mcp.CallToolResult{IsError: true}, nil, false, "error"},
		{"protocol error", nil, &jsonrpc.Error{Code: -32602, Message: "bad"}, false, "error"},
		{"refused", nil, errors.New("unknown tool"), true, "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := &memCounter{}
			s := New(mc, func(c *pipeline.Call) bool { return c.Item != "made-up" })
			c := &pipeline.Call{Method: pipeline.MethodCallTool, Name: "fs__read", Upstream: "fs", Item: "read", Principal: owner}
			res, err := s.Handle(context.Background(), c, pipeline.HandlerFunc(func(_ context.Context, c *pipeline.Call) (mcp.Result, error) {
				if tc.refuse {
					c.Refused = "authorize"
				}
				return tc.res, tc.err
			}))
			if res != tc.res || !errors.Is(err, tc.err) {
				t.Fatalf("the stage changed the answer: %v %v", res, err)
			}
			if len(mc.got) != 1 {
				t.Fatalf("counted %d times, want once", len(mc.got))
			}
			if g := mc.got[0]; g.p != owner || g.upstream != "fs" || g.tool != "read" || g.outcome != tc.outcome {
				t.Errorf("counted %+v, want fs/read %s", g, tc.outcome)
			}
		})
	}
}

// TestUnlistedToolNotNamed: a call of a tool its upstream does not list
// is counted without the name the client made up.
func TestUnlistedToolNotNamed(t *testing.T) {
	mc := &memCounter{}
	s := New(mc, func(c *pipeline.Call) bool { return c.Item != "made-up" })
	c := &pipeline.Call{Method: pipeline.MethodCallTool, Name: "fs__made-up", Upstream: "fs", Item: "made-up"}
	_, _ = s.Handle(context.Background(), c, pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) {
		return nil, errors.New("unknown tool")
	}))
	if len(mc.got) != 1 || mc.got[0].upstream != "fs" || mc.got[0].tool != "" || mc.got[0].outcome != "error" {
		t.Errorf("counted %+v, want fs with no tool name, error", mc.got)
	}
}

// TestInOrder: the stage compiles into the chain for tools/call only,
// right below audit.
func TestInOrder(t *testing.T) {
	mc := &memCounter{}
	term := pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) { return &mcp.CallToolResult{}, nil })
	ch, err := pipeline.Compile([]pipeline.Stage{New(mc, nil)}, terminal{term})
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.Stages(pipeline.MethodCallTool); len(got) != 2 || got[0] != "meter" {
		t.Errorf("tools/call stages = %v", got)
	}
	if got := ch.Stages(pipeline.MethodGetPrompt); len(got) != 1 {
		t.Errorf("prompts/get stages = %v (meter counts tools/call only)", got)
	}
	var order []string
	for _, e := range pipeline.Order() {
		order = append(order, e.Name)
	}
	if len(order) < 2 || order[0] != "audit" || order[1] != "meter" {
		t.Errorf("order = %v, want meter right after audit", order)
	}
}

type terminal struct{ h pipeline.Handler }

func (terminal) Name() string { return "forward" }
func (t terminal) Handle(ctx context.Context, c *pipeline.Call, _ pipeline.Handler) (mcp.Result, error) {
	return t.h.Handle(ctx, c)
}
