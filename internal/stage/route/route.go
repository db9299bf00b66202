// Package route is the pipeline stage that picks the target (connection)
// of an upstream for each attempt of a call, and falls back to the next
// target when an attempt could not reach its own.
//
// It sees the call (its upstream, method, item and caller, through the
// [Targets] the gateway gives it) and the error of each attempt; it
// changes only Call.Target, once per attempt, before running the stages
// below it. The decision itself is [Decide], a pure function of the
// targets' state and the routing settings, so every choice can be
// reproduced and explained.
//
// A call falls back only after a failure of reach (-32010: breaker open,
// no connection, transport failure), never after the target's own error,
// a tool error or a timeout (the time is spent). A call that never left
// the gateway (Attempt.MayHaveRun is false) falls back at once, whatever
// the tool; one that may have reached the target only when it is safe to
// repeat (Targets.Repeatable): a call that may have run is not run twice.
package route

import (
	"context"
	"errors"

	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Plan says how one call is routed.
type Plan[T any] struct {
	// Group is the upstream's name (for metrics, logs and errors).
	Group string
	// Candidates are the targets to decide among. Empty: the call is not
	// routed, and its one attempt goes to Direct (an upstream without
	// targets, one being replaced by a reload, or a resumption that must
	// return to the target that issued it).
	Candidates []Candidate[T]
	Direct     T
	// Simple marks the common case: a single target and nothing
	// local-only. Its one attempt is explained (FactorOnly) but no
	// decision is made or counted.
	Simple bool
	// Input is what decides besides the candidates (unless Simple).
	Input Input
}

// Targets is what the stage needs of the gateway's upstreams.
type Targets[T any] interface {
	// Plan says how call c, aimed at the upstream in c.Target, is routed.
	Plan(ctx context.Context, c *pipeline.Call) Plan[T]
	// Try runs one attempt on target t with run: holding t for the whole
	// attempt, so that a reload that replaces t lets it finish, and
	// waiting for a reload's replacement of t when t is down.
	Try(ctx context.Context, t T, run func(context.Context, T) (mcp.Result, error)) (mcp.Result, error)
	// Repeatable tells whether c may run again on another target after
	// it may have reached t (the tool is safe to repeat).
	Repeatable(c *pipeline.Call, t T) bool
	// Decided observes a decision (counted: not Simple): metrics, logs,
	// and the call's routing explanation.
	Decided(ctx context.Context, group string, d Decision[T], counted bool)
	// Tried observes the end of one attempt on the named target.
	Tried(ctx context.Context, target string, err error)
	// FellBack observes a fallback from one target to the next.
	FellBack(ctx context.Context, c *pipeline.Call, group, from, to string, maybeSent bool, err error)
}

// Stage is the route stage.
type Stage[T any] struct {
	targets Targets[T]
	aim     func(*pipeline.Call, T)
}

// New returns the stage. aim sets the call's target for an attempt
// (usually c.Target = t).
func New[T any](targets Targets[T], aim func(*pipeline.Call, T)) *Stage[T] {
	return &Stage[T]{targets: targets, aim: aim}
}

// Name implements pipeline.Stage.
func (*Stage[T]) Name() string { return "route" }

// Handle implements pipeline.Stage: each attempt sets the target and runs
// the stages below.
func (s *Stage[T]) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	return Run(ctx, s.targets, c, func(ctx context.Context, t T) (mcp.Result, error) {
		s.aim(c, t)
		return next.Handle(ctx, c)
	})
}

// Run routes call c: it decides the order of the targets and runs run on
// each in turn until one answers or a failure must not fall back. The
// terminal uses it directly for completions, which follow the upstream of
// the item they complete but are routed like any call.
func Run[T any](ctx context.Context, ts Targets[T], c *pipeline.Call, run func(context.Context, T) (mcp.Result, error)) (mcp.Result, error) {
	p := ts.Plan(ctx, c)
	if len(p.Candidates) == 0 {
		return ts.Try(ctx, p.Direct, run)
	}
	var d Decision[T]
	if p.Simple {
		d = Decision[T]{Order: p.Candidates[:1], Factor: FactorOnly}
	} else {
		d = Decide(p.Candidates, p.Input)
	}
	ts.Decided(ctx, p.Group, d, !p.Simple)
	if d.Refusal != "" {
		return nil, &jsonrpc.Error{Code: mcpwire.CodeRoutingRefused, Message: "upstream " + p.Group + ": " + d.Refusal}
	}
	for i, cand := range d.Order {
		ctx, att := WithAttempt(ctx)
		res, err := ts.Try(ctx, cand.Target, run)
		ts.Tried(ctx, cand.Name, err)
		if err == nil || i == len(d.Order)-1 {
			return res, err
		}
		if code(err) != mcpwire.CodeUpstreamUnavailable || att.Answered.Load() {
			return res, err
		}
		if att.MayHaveRun() && !ts.Repeatable(c, cand.Target) {
			return res, err
		}
		ts.FellBack(ctx, c, p.Group, cand.Name, d.Order[i+1].Name, att.MayHaveRun(), err)
	}
	return nil, &jsonrpc.Error{Code: mcpwire.CodeUpstreamUnavailable, Message: "upstream " + p.Group + ": no target"}
}

func code(err error) int64 {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr.Code
	}
	return 0
}
