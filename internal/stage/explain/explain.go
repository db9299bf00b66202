// Package explain is the pipeline stage that tells a caller how its call
// was routed, when the request's _meta asks for it (MetaExplain: true).
//
// It sees the request's _meta and the result the stages below it
// returned; it puts a Note in the context, which the route stage's
// targets and the cache fill in (the upstream, the target chosen, the
// factor that decided, the reasons and each attempt, how the cache
// answered), and attaches it to the result's _meta under MetaRoute. It
// changes nothing else. Whether the caller may see the reasons and the
// attempts (which name the device's load and hosts) is the wiring's
// decision (Stage.Full).
package explain

import (
	"context"
	"slices"
	"sync"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Request and result _meta keys.
const (
	// MetaExplain in a request's _meta (true) asks for the routing
	// decision in the result's _meta under MetaRoute.
	MetaExplain = "io.mcpedge/explain"
	// MetaRoute is the routing decision in a result's _meta.
	MetaRoute = "io.mcpedge/route"
)

// Note collects the decision and attempts of one call for the caller. A
// nil *Note records nothing, so writers need not check.
type Note struct {
	mu sync.Mutex
	// full: the caller may see the reasons (the device's load, power,
	// which rules matched) and the attempts (the targets' errors, which
	// name hosts and addresses).
	full     bool
	upstream string
	chosen   string
	factor   string
	reasons  []string
	attempts []map[string]any
	// cache is how the response cache answered: "hit" (not routed at
	// all), "stale" (routed, failed, answered with a stale result), or ""
	// (not from the cache).
	cache string
}

type noteKey struct{}

// Start returns a context that collects the routing decision when meta
// asks for it, and the note to attach afterwards (nil when not asked).
func Start(ctx context.Context, meta mcp.Meta, full bool) (context.Context, *Note) {
	if v, _ := meta[MetaExplain].(bool); !v {
		return ctx, nil
	}
	n := &Note{full: full}
	return context.WithValue(ctx, noteKey{}, n), n
}

// From returns the note ctx carries, or nil.
func From(ctx context.Context) *Note {
	n, _ := ctx.Value(noteKey{}).(*Note)
	return n
}

// Record sets the decision: the upstream, the target tried first, the
// factor that decided and the reasons.
func (n *Note) Record(upstream, chosen, factor string, reasons []string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.upstream, n.chosen, n.factor, n.reasons = upstream, chosen, factor, reasons
}

// Chose records that the call went on to target (a fallback).
func (n *Note) Chose(target string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.chosen = target
	n.mu.Unlock()
}

// Attempt records one attempt on target and how it ended.
func (n *Note) Attempt(target string, err error) {
	if n == nil {
		return
	}
	a := map[string]any{"target": target, "ok": err == nil}
	if err != nil {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		a["error"] = msg
	}
	n.mu.Lock()
	n.attempts = append(n.attempts, a)
	n.mu.Unlock()
}

// Cached records how the response cache answered ("hit" or "stale").
func (n *Note) Cached(how string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.cache = how
	n.mu.Unlock()
}

// Attach puts the note into the result's _meta under MetaRoute. A result
// answered from the cache was not routed; the note then says so. A stale
// result stands in for a call that was routed and failed: the note says
// "stale" as well as how it was routed and (when full) the failed
// attempts.
func (n *Note) Attach(res mcp.Result) {
	if n == nil || res == nil || isNil(res) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v := map[string]any{}
	if n.cache == "hit" || (n.upstream == "" && n.cache == "") {
		v["cached"] = true
	} else {
		if n.upstream != "" {
			v["upstream"] = n.upstream
			v["target"] = n.chosen
			v["factor"] = n.factor
		}
		if n.full {
			v["reasons"] = slices.Clone(n.reasons)
			v["attempts"] = slices.Clone(n.attempts)
		}
		if n.cache == "stale" {
			v["stale"] = true
		}
	}
	m := res.GetMeta()
	if m == nil {
		m = map[string]any{}
	}
	m[MetaRoute] = v
	res.SetMeta(m)
}

func isNil(r mcp.Result) bool {
	switch v := r.(type) {
	case *mcp.CallToolResult:
		return v == nil
	case *mcp.ReadResourceResult:
		return v == nil
	case *mcp.GetPromptResult:
		return v == nil
	}
	return false
}

// Stage is the explain stage. Full tells whether the call's caller may
// see a note in full (reasons and attempts).
type Stage struct {
	Full func(c *pipeline.Call) bool
}

// Name implements pipeline.Stage.
func (Stage) Name() string { return "explain" }

// Handle implements pipeline.Stage.
func (s Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if c.Request == nil {
		return next.Handle(ctx, c)
	}
	var meta mcp.Meta
	if p, ok := c.Request.GetParams().(interface{ GetMeta() map[string]any }); ok {
		meta = p.GetMeta()
	}
	if v, _ := meta[MetaExplain].(bool); !v {
		return next.Handle(ctx, c)
	}
	ctx, note := Start(ctx, meta, s.Full(c))
	res, err := next.Handle(ctx, c)
	note.Attach(res)
	return res, err
}
