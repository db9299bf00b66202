// Package audit is the pipeline stage that records every tool call in the
// audit log: who called, which tool, the outcome and the latency, with the
// arguments hashed (or counted, or kept, as [audit] arguments says). It
// records in single-user mode too (the caller is then the anonymous local
// user), and it records calls that a later stage refused.
//
// It sees the call before every other stage and its result after them; it
// changes nothing.
package audit

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/policy"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Record describes one tool call for the audit log.
type Record struct {
	Upstream  string
	Tool      string // the tool's name at the upstream
	Name      string // the name the client used
	Arguments json.RawMessage
	Outcome   string // OutcomeOK, OutcomeError or OutcomeDenied
	Error     string
	Latency   time.Duration
	ClientIP  string
	RequestID string
	// Redacted is what the guard stage removed from the result, by kind.
	Redacted map[string]int
}

// Outcomes of a call.
const (
	OutcomeOK     = pipeline.OutcomeOK
	OutcomeError  = pipeline.OutcomeError // a tool error (isError) or a protocol error
	OutcomeDenied = pipeline.OutcomeDenied
)

// A Recorder writes call records. It must be safe for concurrent use and
// must not block on slow storage (the audit logger batches).
type Recorder interface {
	Record(ctx context.Context, p *principal.Principal, r Record)
}

// Stage is the audit stage.
type Stage struct {
	rec Recorder
	now func() time.Time
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage writing to rec.
func New(rec Recorder) *Stage { return &Stage{rec: rec, now: time.Now} }

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "audit" }

// Handle implements [pipeline.Stage]: it records the call once, after the
// rest of the chain answered.
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	start := s.now()
	res, err := next.Handle(ctx, c)
	r := Record{Upstream: c.Upstream, Tool: c.Item, Name: c.Name, Arguments: c.Arguments, RequestID: c.RequestID, Redacted: c.Redacted,
		Outcome: pipeline.ToolOutcome(c, res, err)}
	if r.Outcome != OutcomeDenied {
		if err != nil {
			r.Error = err.Error()
		}
		r.Latency = s.now().Sub(start)
	}
	s.rec.Record(ctx, c.Principal, r)
	return res, err
}

// LogRecorder writes tool-call records as entries of the audit log.
type LogRecorder struct {
	log       *audit.Logger
	arguments atomic.Pointer[string]
}

// NewLogRecorder returns a recorder writing to log; arguments is the
// [audit] arguments policy (audit.ArgsHash, ArgsFull or ArgsSize).
func NewLogRecorder(log *audit.Logger, arguments string) *LogRecorder {
	l := &LogRecorder{log: log}
	l.SetArguments(arguments)
	return l
}

// SetArguments changes the arguments policy of the records written from
// now on (a configuration reload).
func (l *LogRecorder) SetArguments(arguments string) { l.arguments.Store(&arguments) }

// MaxName bounds a tool name in an audit entry (MCP tool names have at
// most 128 characters; the prefix adds the upstream's name).
const MaxName = 256

// Record implements [Recorder]: one "tool.call" entry.
func (l *LogRecorder) Record(ctx context.Context, p *principal.Principal, c Record) {
	if l == nil || l.log == nil {
		return
	}
	detail := audit.ArgumentsDetail(*l.arguments.Load(), c.Arguments)
	if detail == nil {
		detail = map[string]any{}
	}
	// Names come from the client (a call of a tool that does not exist
	// carries whatever it sent): clip them, as errors are clipped, so one
	// call can not add megabytes to the append-only log.
	detail["name"] = truncate(c.Name, MaxName)
	if c.RequestID != "" {
		detail["request_id"] = c.RequestID
	}
	if c.Error != "" {
		detail["error"] = truncate(c.Error, 500)
	}
	if len(c.Redacted) > 0 {
		detail["redacted"] = c.Redacted
	}
	b, _ := json.Marshal(detail)
	e := &store.AuditEntry{
		Action:    "tool.call",
		Target:    truncate(policy.CanonicalName(c.Upstream, c.Tool), MaxName),
		Outcome:   c.Outcome,
		LatencyUS: c.Latency.Microseconds(),
		Detail:    b,
	}
	if c.Upstream == "" {
		e.Target = truncate(c.Name, MaxName)
	}
	if p != nil {
		e.TenantID, e.Actor, e.ActorKind = p.TenantID, p.ID, p.Kind
	} else {
		e.ActorKind = principal.KindAnonymous
	}
	l.log.Record(ctx, e)
}

// truncate clips s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
