package route

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeTargets is the unit-test seam for the gateway's upstreams: targets
// are names, and each attempt's outcome is scripted per target.
type fakeTargets struct {
	plan       Plan[string]
	outcome    map[string]func(*Attempt) error // per target; nil: success
	repeatable bool
	tried      []string
	decided    []string // "group/first/factor/counted"
	fellBack   []string // "from>to"
}

func (f *fakeTargets) Plan(context.Context, *pipeline.Call) Plan[string] { return f.plan }

func (f *fakeTargets) Try(ctx context.Context, t string, run func(context.Context, string) (mcp.Result, error)) (mcp.Result, error) {
	return run(ctx, t)
}

func (f *fakeTargets) Repeatable(*pipeline.Call, string) bool { return f.repeatable }

func (f *fakeTargets) Decided(_ context.Context, group string, d Decision[string], counted bool) {
	c := "uncounted"
	if counted {
		c = "counted"
	}
	f.decided = append(f.decided, strings.Join([]string{group, d.First(), d.Factor, c}, "/"))
}

func (f *fakeTargets) Tried(_ context.Context, target string, _ error) {
	f.tried = append(f.tried, target)
}

func (f *fakeTargets) FellBack(_ context.Context, _ *pipeline.Call, _, from, to string, _ bool, _ error) {
	f.fellBack = append(f.fellBack, from+">"+to)
}

// next is the fake rest of the chain: it plays the target's scripted
// outcome with the attempt the stage put in ctx.
func (f *fakeTargets) next() pipeline.Handler {
	return pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (mcp.Result, error) {
		t := c.Target.(string)
		if o := f.outcome[t]; o != nil {
			if err := o(AttemptFrom(ctx)); err != nil {
				return nil, err
			}
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: t}}}, nil
	})
}

var unavailable = &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "connection refused"}

// refused: the request never left the gateway.
func refused(a *Attempt) error { a.Sent.Store(true); a.Dispatch(false); return unavailable }

// cutOff: the request may have reached the target before the connection broke.
func cutOff(a *Attempt) error { a.Sent.Store(true); a.Dispatch(true); return unavailable }

func twoTargets() Plan[string] {
	return Plan[string]{Group: "search", Candidates: []Candidate[string]{{Target: "local", Name: "local", Local: true}, {Target: "cloud", Name: "cloud"}},
		Input: Input{Routing: config.DefaultRouting()}}
}

func run(t *testing.T, f *fakeTargets) (string, error) {
	t.Helper()
	st := New[string](f, func(c *pipeline.Call, tg string) { c.Target = tg })
	c := &pipeline.Call{Method: pipeline.MethodCallTool, Item: "find"}
	res, err := st.Handle(context.Background(), c, f.next())
	if err != nil {
		return "", err
	}
	return res.(*mcp.CallToolResult).Content[0].(*mcp.TextContent).Text, nil
}

func TestRouteFallsBackWhenNeverSent(t *testing.T) {
	f := &fakeTargets{plan: twoTargets(), outcome: map[string]func(*Attempt) error{"local": refused}}
	got, err := run(t, f)
	if err != nil || got != "cloud" {
		t.Fatalf("got %q, %v; want the call answered by cloud", got, err)
	}
	if strings.Join(f.tried, ",") != "local,cloud" || strings.Join(f.fellBack, ",") != "local>cloud" {
		t.Errorf("tried %v, fell back %v", f.tried, f.fellBack)
	}
	if strings.Join(f.decided, ",") != "search/local/priority/counted" {
		t.Errorf("decided %v", f.decided)
	}
}

func TestRouteDoesNotRepeatWhatMayHaveRun(t *testing.T) {
	f := &fakeTargets{plan: twoTargets(), outcome: map[string]func(*Attempt) error{"local": cutOff}}
	if _, err := run(t, f); !errors.Is(err, unavailable) {
		t.Fatalf("err %v; want local's error, not a second run on cloud", err)
	}
	if len(f.fellBack) != 0 {
		t.Errorf("fell back %v for a call that may have run and is not safe to repeat", f.fellBack)
	}
	f = &fakeTargets{plan: twoTargets(), outcome: map[string]func(*Attempt) error{"local": cutOff}, repeatable: true}
	if got, err := run(t, f); err != nil || got != "cloud" {
		t.Fatalf("a repeatable call: %q, %v; want cloud", got, err)
	}
}

func TestRouteKeepsTheTargetsOwnAnswer(t *testing.T) {
	toolErr := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "bad"}
	answered := func(a *Attempt) error { a.Sent.Store(true); a.Answered.Store(true); return unavailable }
	for name, o := range map[string]func(*Attempt) error{
		"another error":            func(a *Attempt) error { return toolErr },
		"-32010 from the upstream": answered,
	} {
		f := &fakeTargets{plan: twoTargets(), outcome: map[string]func(*Attempt) error{"local": o}, repeatable: true}
		if _, err := run(t, f); err == nil || len(f.fellBack) != 0 {
			t.Errorf("%s: err %v, fell back %v; want local's answer", name, err, f.fellBack)
		}
	}
}

func TestRouteLastTargetsErrorStands(t *testing.T) {
	f := &fakeTargets{plan: twoTargets(), outcome: map[string]func(*Attempt) error{"local": refused, "cloud": refused}}
	if _, err := run(t, f); !errors.Is(err, unavailable) {
		t.Fatalf("err %v", err)
	}
	if strings.Join(f.tried, ",") != "local,cloud" {
		t.Errorf("tried %v", f.tried)
	}
}

func TestRouteRefusesLocalOnlyWithoutLocalTarget(t *testing.T) {
	p := twoTargets()
	p.Candidates = p.Candidates[1:]
	p.Input.LocalOnly = `tenant "clinic" is local-only`
	f := &fakeTargets{plan: p}
	_, err := run(t, f)
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != mcpwire.CodeRoutingRefused || !strings.Contains(werr.Message, "upstream search: tenant \"clinic\" is local-only") {
		t.Fatalf("err %v; want -32013 naming the upstream and the rule", err)
	}
	if len(f.tried) != 0 || strings.Join(f.decided, ",") != "search//sensitivity/counted" {
		t.Errorf("tried %v, decided %v", f.tried, f.decided)
	}
}

func TestRouteDirectAndSimple(t *testing.T) {
	f := &fakeTargets{plan: Plan[string]{Direct: "issuer"}}
	if got, err := run(t, f); err != nil || got != "issuer" || len(f.decided)+len(f.tried) != 0 {
		t.Fatalf("direct: %q, %v, decided %v, tried %v", got, err, f.decided, f.tried)
	}
	f = &fakeTargets{plan: Plan[string]{Group: "fs", Simple: true, Candidates: []Candidate[string]{{Target: "only", Name: "only"}}}}
	if got, err := run(t, f); err != nil || got != "only" || strings.Join(f.decided, ",") != "fs/only/only/uncounted" || strings.Join(f.tried, ",") != "only" {
		t.Fatalf("simple: %q, %v, decided %v, tried %v", got, err, f.decided, f.tried)
	}
}
