// Package meter is the pipeline stage that counts every tools/call for
// usage metering (internal/metering, docs/platform.md): by tenant, caller,
// upstream, tool and outcome. It sits right below audit, so a call a later
// stage refused is counted as denied, and it changes nothing.
//
// Its cost on the call is one in-memory increment; the counts reach the
// store in batches (metering.Meter.Run).
package meter

import (
	"context"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A Counter counts calls; *metering.Meter is one. It must be safe for
// concurrent use and must not block.
type Counter interface {
	Count(p *principal.Principal, upstream, tool, outcome string)
}

// Stage is the metering stage.
type Stage struct {
	c     Counter
	known func(*pipeline.Call) bool
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage counting into c. known, if not nil, reports
// whether the call's upstream lists its tool (c.Upstream, c.Item): a call
// of a tool it does not list is counted without the tool's name, which is
// whatever the client sent, so that a client can not add a row per name
// it makes up.
func New(c Counter, known func(*pipeline.Call) bool) *Stage { return &Stage{c: c, known: known} }

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "meter" }

// Handle implements [pipeline.Stage]: it counts the call once, after the
// rest of the chain answered.
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	res, err := next.Handle(ctx, c)
	tool := c.Item
	if s.known != nil && tool != "" && !s.known(c) {
		tool = ""
	}
	s.c.Count(c.Principal, c.Upstream, tool, pipeline.ToolOutcome(c, res, err))
	return res, err
}
