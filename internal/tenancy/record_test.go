package tenancy

import (
	"context"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

// TestRecordBoundsClientNames: the name of a tools/call comes from
// the client, up to the body limit (4 MiB by default). A call of a tool
// that does not exist was recorded with that name twice, as the target and
// in the detail, so each refused call could add megabytes to the
// append-only audit log. Names are clipped like errors are.
func TestRecordBoundsClientNames(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lg := audit.NewLogger(st, nil, audit.LoggerOptions{})
	defer lg.Close(ctx)
	l := New(Options{Audit: lg, Config: config.Default()})
	p := &principal.Principal{Kind: principal.KindKey, ID: "k", TenantID: "t", Role: principal.RoleMember}
	huge := strings.Repeat("x", 1<<20)
	l.Record(ctx, p, auditstage.Record{Name: huge, Outcome: "denied", RequestID: "r1"})
	l.Record(ctx, p, auditstage.Record{Upstream: "ev", Tool: huge, Name: "ev__" + huge, Outcome: "denied"})
	if err := lg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := st.ListAudit(ctx, store.AuditFilter{Action: "tool.call"})
	if err != nil || len(es) != 2 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	for _, e := range es {
		if n := len(e.Target) + len(e.Detail); n > 4096 {
			t.Errorf("one refused call of a made-up tool wrote %d bytes to the audit log", n)
		}
		if !strings.HasPrefix(e.Target, "ev__xxx") && !strings.HasPrefix(e.Target, "xxx") {
			t.Errorf("target %.40q", e.Target)
		}
	}
}
