package audit

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type memRecorder struct {
	mu   sync.Mutex
	recs []Record
	who  []*principal.Principal
}

func (m *memRecorder) Record(_ context.Context, p *principal.Principal, r Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	m.who = append(m.who, p)
}

// fixedNext answers with res and err after advancing the stage's clock.
type fixedNext struct {
	res     mcp.Result
	err     error
	refuse  bool
	advance func()
}

func (f fixedNext) Handle(_ context.Context, c *pipeline.Call) (mcp.Result, error) {
	if f.advance != nil {
		f.advance()
	}
	if f.refuse {
		c.Refused = "authorize"
	}
	return f.res, f.err
}

func TestStageRecordsEveryOutcomeOnce(t *testing.T) {
	owner := &principal.Principal{Kind: principal.KindKey, ID: "k1", TenantID: "t1", Role: principal.RoleOwner}
	protoErr := &jsonrpc.Error{Code: -32602, Message: "bad arguments"}
	for _, tc := range []struct {
		name    string
		next    fixedNext
		p       *principal.Principal
		outcome string
		errText string
		latency bool
	}{
		{"ok", fixedNext{res: &mcp.CallToolResult{}}, owner, OutcomeOK, "", true},
		{"tool error", fixedNext{res: &mcp.CallToolResult{IsError: true}}, owner, OutcomeError, "", true},
		{"protocol error", fixedNext{err: protoErr}, owner, OutcomeError, "bad arguments", true},
		{"refused", fixedNext{err: errors.New("unknown tool"), refuse: true}, owner, OutcomeDenied, "", false},
		{"single-user", fixedNext{res: &mcp.CallToolResult{}}, nil, OutcomeOK, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &memRecorder{}
			s := New(rec)
			now := time.Unix(1000, 0)
			s.now = func() time.Time { return now }
			tc.next.advance = func() { now = now.Add(1500 * time.Microsecond) }
			c := &pipeline.Call{Method: pipeline.MethodCallTool, Name: "up__echo", Upstream: "up", Item: "echo",
				Arguments: json.RawMessage(`{"a":1}`), Principal: tc.p, RequestID: "rid-1"}
			res, err := s.Handle(context.Background(), c, tc.next)
			if res != tc.next.res || !errors.Is(err, tc.next.err) {
				t.Fatalf("the stage changed the answer: %v %v", res, err)
			}
			if len(rec.recs) != 1 {
				t.Fatalf("%d records, want 1", len(rec.recs))
			}
			r := rec.recs[0]
			if r.Outcome != tc.outcome || r.Upstream != "up" || r.Tool != "echo" || r.Name != "up__echo" || r.RequestID != "rid-1" || string(r.Arguments) != `{"a":1}` {
				t.Fatalf("record = %+v, want outcome %s", r, tc.outcome)
			}
			if r.Error != tc.errText {
				t.Fatalf("error = %q, want %q", r.Error, tc.errText)
			}
			if tc.latency != (r.Latency == 1500*time.Microsecond) {
				t.Fatalf("latency = %v", r.Latency)
			}
			if rec.who[0] != tc.p {
				t.Fatalf("principal not passed on")
			}
		})
	}
}

// The log recorder writes real, hash-chained entries, with the arguments
// hashed and the caller of single-user mode as anonymous.
func TestLogRecorderWritesAuditEntries(t *testing.T) {
	ctx := context.Background()
	st, l := openLog(t)
	s := New(NewLogRecorder(l, audit.ArgsHash))
	long := make([]byte, 1000)
	for i := range long {
		long[i] = 'x'
	}
	calls := []*pipeline.Call{
		{Method: pipeline.MethodCallTool, Name: "up__echo", Upstream: "up", Item: "echo", Arguments: json.RawMessage(`{"b":2, "a":1}`), Redacted: map[string]int{"aws_access_key": 2}},
		{Method: pipeline.MethodCallTool, Name: string(long), Principal: &principal.Principal{Kind: principal.KindKey, ID: "k9", TenantID: "t9", Role: principal.RoleViewer}},
	}
	_, _ = s.Handle(ctx, calls[0], fixedNext{res: &mcp.CallToolResult{}})
	_, _ = s.Handle(ctx, calls[1], fixedNext{err: errors.New("no"), refuse: true})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := st.ListAudit(ctx, store.AuditFilter{Action: "tool.call"})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2", len(es))
	}
	e := es[0]
	var d map[string]any
	if err := json.Unmarshal(e.Detail, &d); err != nil {
		t.Fatal(err)
	}
	if e.Target != "up__echo" || e.Outcome != OutcomeOK || e.ActorKind != principal.KindAnonymous || e.TenantID != "" {
		t.Fatalf("entry = %+v", e)
	}
	// The hash of the canonical arguments, not the arguments.
	if d["args_sha256"] != "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777" || d["args"] != nil || d["name"] != "up__echo" {
		t.Fatalf("detail = %v", d)
	}
	// What the guard stage redacted from the result.
	if r, _ := d["redacted"].(map[string]any); r["aws_access_key"] != 2.0 {
		t.Fatalf("detail redacted = %v", d["redacted"])
	}
	e = es[1]
	if e.Outcome != OutcomeDenied || e.Actor != "k9" || e.TenantID != "t9" || len(e.Target) > MaxName+len("…") {
		t.Fatalf("denied entry = %+v", e)
	}
}

// SetArguments (a reload of [audit] arguments) changes the records written
// from then on.
func TestLogRecorderSetArguments(t *testing.T) {
	ctx := context.Background()
	st, l := openLog(t)
	rec := NewLogRecorder(l, audit.ArgsHash)
	r := Record{Upstream: "up", Tool: "t", Name: "up__t", Arguments: json.RawMessage(`{"k":"v"}`), Outcome: OutcomeOK}
	rec.Record(ctx, nil, r)
	rec.SetArguments(audit.ArgsFull)
	rec.Record(ctx, nil, r)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := st.ListAudit(ctx, store.AuditFilter{Action: "tool.call"})
	if err != nil || len(es) != 2 {
		t.Fatalf("entries: %v %v", len(es), err)
	}
	if strings.Contains(string(es[0].Detail), `"v"`) || !strings.Contains(string(es[1].Detail), `"args":{"k":"v"}`) {
		t.Fatalf("details: %s / %s", es[0].Detail, es[1].Detail)
	}
}

// openLog opens an audit logger over a real SQLite store in a temporary
// directory.
func openLog(t *testing.T) (*sqlite.Store, *audit.Logger) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, audit.NewLogger(st, nil, audit.LoggerOptions{})
}
