package explain

import (
	"context"
	"errors"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestNote(t *testing.T) {
	ctx, n := Start(context.Background(), mcp.Meta{MetaExplain: true}, true)
	if n == nil || From(ctx) != n {
		t.Fatal("explain not recorded")
	}
	if _, n2 := Start(context.Background(), mcp.Meta{MetaExplain: "yes"}, true); n2 != nil {
		t.Error("a non-boolean explain is honoured")
	}
	n.Record("search", "local", "priority", []string{"why"})
	n.Attempt("local", errors.New("refused"))
	n.Chose("cloud")
	n.Attempt("cloud", nil)
	res := &mcp.CallToolResult{}
	n.Attach(res)
	v, _ := res.Meta[MetaRoute].(map[string]any)
	if v["target"] != "cloud" || v["upstream"] != "search" || v["factor"] != "priority" {
		t.Errorf("route meta %v", res.Meta)
	}
	if a, _ := v["attempts"].([]map[string]any); len(a) != 2 || a[0]["error"] != "refused" || a[1]["ok"] != true {
		t.Errorf("attempts %v", v["attempts"])
	}
	var nilRes *mcp.CallToolResult
	n.Attach(nilRes) // no panic
	var none *Note
	none.Record("x", "y", "z", nil) // not asked: nothing, no panic
	none.Attach(res)
}

func TestNoteNotFull(t *testing.T) {
	_, n := Start(context.Background(), mcp.Meta{MetaExplain: true}, false)
	n.Record("search", "local", "load", []string{"device CPU use 97%"})
	n.Attempt("local", errors.New("dial tcp 10.0.0.7:443: refused"))
	res := &mcp.CallToolResult{}
	n.Attach(res)
	v, _ := res.Meta[MetaRoute].(map[string]any)
	if _, ok := v["reasons"]; ok {
		t.Errorf("reasons shown to a caller who may not see them: %v", v)
	}
	if _, ok := v["attempts"]; ok {
		t.Errorf("attempts shown to a caller who may not see them: %v", v)
	}
}

func TestNoteCache(t *testing.T) {
	_, hit := Start(context.Background(), mcp.Meta{MetaExplain: true}, true)
	hit.Cached("hit")
	res := &mcp.CallToolResult{}
	hit.Attach(res)
	if v, _ := res.Meta[MetaRoute].(map[string]any); v["cached"] != true || v["upstream"] != nil {
		t.Errorf("cache hit: %v", v)
	}
	_, stale := Start(context.Background(), mcp.Meta{MetaExplain: true}, true)
	stale.Record("search", "local", "only", nil)
	stale.Cached("stale")
	res = &mcp.CallToolResult{}
	stale.Attach(res)
	if v, _ := res.Meta[MetaRoute].(map[string]any); v["stale"] != true || v["upstream"] != "search" {
		t.Errorf("stale: %v", v)
	}
}

// TestStage: the stage puts a note in the context of the stages below
// only when asked, attaches it to their result, and asks Full per call.
func TestStage(t *testing.T) {
	var sawNote *Note
	next := pipeline.HandlerFunc(func(ctx context.Context, c *pipeline.Call) (mcp.Result, error) {
		sawNote = From(ctx)
		sawNote.Record("search", "local", "only", []string{"r"})
		return &mcp.CallToolResult{}, nil
	})
	full := false
	st := Stage{Full: func(*pipeline.Call) bool { return full }}
	call := func(meta mcp.Meta) mcp.Result {
		c := &pipeline.Call{Method: pipeline.MethodCallTool, Request: &mcp.CallToolRequest{Params: &mcp.CallToolParamsRaw{Meta: meta}}}
		res, err := st.Handle(context.Background(), c, next)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := call(nil); sawNote != nil || res.GetMeta()[MetaRoute] != nil {
		t.Fatalf("not asked: note %v, meta %v", sawNote, res.GetMeta())
	}
	res := call(mcp.Meta{MetaExplain: true})
	v, _ := res.GetMeta()[MetaRoute].(map[string]any)
	if sawNote == nil || v["upstream"] != "search" || v["reasons"] != nil {
		t.Fatalf("asked, not full: %v", res.GetMeta())
	}
	full = true
	res = call(mcp.Meta{MetaExplain: true})
	if v, _ := res.GetMeta()[MetaRoute].(map[string]any); v["reasons"] == nil {
		t.Fatalf("asked, full: %v", res.GetMeta())
	}
	// A queued delivery has no request: passed through.
	if _, err := st.Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, next); err != nil {
		t.Fatal(err)
	}
}
