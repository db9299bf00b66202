// Package deferral is the pipeline stage that queues a tool call instead
// of failing it when its upstream is unavailable: the offline queue at the
// edge (docs/edge.md, "Offline queue").
//
// It sees the call and the error the stages below it returned. A call is
// queued only when all of these hold: the error is the gateway's own
// "unavailable" (mcpwire.CodeUpstreamUnavailable), not the upstream's
// answer (Call.Answered) — so a call the upstream may have run is never
// queued and run again —; the call is not the resumption of a
// multi-round-trip exchange (its state lives with the upstream); and the
// [Queue] says the tool may be deferred (configuration, or the client's
// _meta flag). The client then gets the queue's answer (a result naming
// the entry, or the queue's refusal) instead of the error.
package deferral

import (
	"context"
	"errors"

	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Queue takes calls for later delivery.
type Queue interface {
	// Deferrable reports whether c may be queued when its upstream is
	// unavailable. It is called only for such calls.
	Deferrable(c *pipeline.Call) bool
	// Defer queues c, which failed with unavailable, and returns what the
	// client gets instead: a result naming the queue entry, or the
	// queue's refusal (which should still say why the upstream was
	// unavailable).
	Defer(ctx context.Context, c *pipeline.Call, unavailable error) (mcp.Result, error)
}

// Stage is the defer stage.
type Stage struct{ q Queue }

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage queueing into q.
func New(q Queue) *Stage { return &Stage{q: q} }

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "defer" }

// Handle implements [pipeline.Stage].
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	res, err := next.Handle(ctx, c)
	if err == nil || c.Answered || c.Resuming || c.Method != pipeline.MethodCallTool || !unavailable(err) || !s.q.Deferrable(c) {
		return res, err
	}
	return s.q.Defer(ctx, c, err)
}

// unavailable reports whether err is the gateway's "unavailable".
func unavailable(err error) bool {
	var werr *jsonrpc.Error
	return errors.As(err, &werr) && werr.Code == mcpwire.CodeUpstreamUnavailable
}
