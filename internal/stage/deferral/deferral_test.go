package deferral

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type fakeQueue struct {
	allow  bool
	asked  int
	queued []*pipeline.Call
}

func (q *fakeQueue) Deferrable(*pipeline.Call) bool { q.asked++; return q.allow }

func (q *fakeQueue) Defer(_ context.Context, c *pipeline.Call, unavailable error) (mcp.Result, error) {
	q.queued = append(q.queued, c)
	return &mcp.CallToolResult{Meta: mcp.Meta{"queued": unavailable.Error()}}, nil
}

// failing answers every call with err, marking it answered by the
// upstream when answered is set.
type failing struct {
	err      error
	answered bool
}

func (f failing) Handle(_ context.Context, c *pipeline.Call) (mcp.Result, error) {
	c.Answered = f.answered
	return nil, f.err
}

func TestDeferOnlyWhatIsSafeToQueue(t *testing.T) {
	down := &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "upstream a: connection refused"}
	for _, tc := range []struct {
		name     string
		call     pipeline.Call
		next     failing
		allow    bool
		wantQ    bool
		wantCode int64
	}{
		{"unavailable, deferrable", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: down}, true, true, 0},
		{"wrapped unavailable", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: fmt.Errorf("route: %w", down)}, true, true, 0},
		{"not deferrable", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: down}, false, false, mcpwire.CodeUpstreamUnavailable},
		{"the upstream answered", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: down, answered: true}, true, false, mcpwire.CodeUpstreamUnavailable},
		{"a resumption", pipeline.Call{Method: pipeline.MethodCallTool, Resuming: true}, failing{err: down}, true, false, mcpwire.CodeUpstreamUnavailable},
		{"a timeout", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: &jsonrpc.Error{Code: mcpwire.CodeUpstreamTimeout, Message: "slow"}}, true, false, mcpwire.CodeUpstreamTimeout},
		{"the upstream's own error", pipeline.Call{Method: pipeline.MethodCallTool}, failing{err: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "bad"}}, true, false, jsonrpc.CodeInvalidParams},
		{"a prompt", pipeline.Call{Method: pipeline.MethodGetPrompt}, failing{err: down}, true, false, mcpwire.CodeUpstreamUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{allow: tc.allow}
			c := tc.call
			res, err := New(q).Handle(context.Background(), &c, tc.next)
			if tc.wantQ {
				if err != nil || len(q.queued) != 1 || q.queued[0] != &c || res.(*mcp.CallToolResult).Meta["queued"] != tc.next.err.Error() {
					t.Fatalf("not queued: %v %v %d", res, err, len(q.queued))
				}
				return
			}
			var werr *jsonrpc.Error
			if len(q.queued) != 0 || !errors.As(err, &werr) || werr.Code != tc.wantCode {
				t.Fatalf("queued %d, err %v, want code %d unchanged", len(q.queued), err, tc.wantCode)
			}
		})
	}
}

func TestSuccessIsNeverQueued(t *testing.T) {
	q := &fakeQueue{allow: true}
	ok := pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) { return &mcp.CallToolResult{}, nil })
	if _, err := New(q).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, ok); err != nil || q.asked != 0 || len(q.queued) != 0 {
		t.Fatalf("err %v, asked %d, queued %d", err, q.asked, len(q.queued))
	}
}
