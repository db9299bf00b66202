package quarantine

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// TestBook: a flagged item is withheld and recorded once per definition
// (audited, counted); an operator's approval in the store reaches the
// Book at its next load, which tells the gateway, and releases that
// definition only; a changed definition is quarantined again.
func TestBook(t *testing.T) {
	ctx := t.Context()
	st, err := open.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	var audits []*store.AuditEntry
	var changed []string
	reg := prometheus.NewRegistry()
	b := New(Options{Store: st, Registerer: reg, Log: slog.New(slog.DiscardHandler),
		Audit:   func(_ context.Context, e *store.AuditEntry) { mu.Lock(); audits = append(audits, e); mu.Unlock() },
		Changed: func(up string) { mu.Lock(); changed = append(changed, up); mu.Unlock() }})
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	it := Item{Upstream: "evil", Kind: store.PinTool, Name: "add", Hash: "h1", Rules: []string{"directive-tag"}, RulesVersion: "v", Text: "<IMPORTANT>"}
	for range 3 {
		if b.Released(ctx, it) {
			t.Fatal("a new item was released")
		}
	}
	if len(audits) != 1 || audits[0].Action != "guard.quarantine" || audits[0].Target != "guard:evil/tool/add" {
		t.Fatalf("audits = %+v (want one guard.quarantine)", audits)
	}
	if n := value(b.quarantined.WithLabelValues("evil", "tool")); n != 1 {
		t.Errorf("quarantined_total = %v, want 1", n)
	}
	if b.Pending("evil") != 1 {
		t.Errorf("Pending = %d", b.Pending("evil"))
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := st.GetGuardVerdict(ctx, "evil", store.PinTool, "add")
	if err != nil || v.Hash != "h1" || v.State != store.VerdictQuarantined || !slices.Equal(v.Rules, it.Rules) {
		t.Fatalf("stored %+v, %v", v, err)
	}

	if _, err := st.DecideGuardVerdict(ctx, "evil", store.PinTool, "add", "h1", store.VerdictApproved, time.Now()); err != nil {
		t.Fatal(err)
	}
	if b.Released(ctx, it) {
		t.Fatal("released before the Book loaded the decision")
	}
	if err := b.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{"evil"}) {
		t.Errorf("Changed = %v, want [evil]", changed)
	}
	if !b.Released(ctx, it) || b.Pending("evil") != 0 {
		t.Fatalf("approved item: released %v, pending %d", b.Released(ctx, it), b.Pending("evil"))
	}
	it2 := it
	it2.Hash = "h2"
	if b.Released(ctx, it2) {
		t.Fatal("a changed definition was released")
	}
	if len(audits) != 2 {
		t.Errorf("the changed definition was not audited: %d entries", len(audits))
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := st.GetGuardVerdict(ctx, "evil", store.PinTool, "add"); v.Hash != "h2" || v.State != store.VerdictQuarantined {
		t.Errorf("stored after the change: %+v", v)
	}
}

// failing is a store that is down.
type failing struct{}

func (failing) ListGuardVerdicts(context.Context, string) ([]store.GuardVerdict, error) {
	return nil, errors.New("down")
}
func (failing) QuarantineItem(context.Context, *store.GuardVerdict) (*store.GuardVerdict, error) {
	return nil, errors.New("down")
}

// With the store down, items are still withheld (from memory), the
// failures are counted, and Flush reports them for a retry.
func TestBookStoreDown(t *testing.T) {
	b := New(Options{Store: failing{}, Log: slog.New(slog.DiscardHandler)})
	if err := b.Load(t.Context()); err == nil {
		t.Error("Load with the store down succeeded")
	}
	it := Item{Upstream: "u", Kind: store.PinPrompt, Name: "p", Hash: "h"}
	if b.Released(t.Context(), it) {
		t.Fatal("released with the store down")
	}
	if err := b.Flush(t.Context()); err == nil {
		t.Error("Flush with the store down succeeded")
	}
	if n := value(b.storeErrors); n != 2 {
		t.Errorf("store errors = %v, want 2", n)
	}
	if b.Released(t.Context(), it) || b.Pending("u") != 1 {
		t.Error("the unwritten quarantine was lost")
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestBookFlagged: an item flagged under descriptions = "flag" is audited
// as guard.flag, with its findings, once per definition and rules; it is
// not stored and awaits no decision.
func TestBookFlagged(t *testing.T) {
	var audits []*store.AuditEntry
	b := New(Options{Store: nil, Log: slog.New(slog.DiscardHandler),
		Audit: func(_ context.Context, e *store.AuditEntry) { audits = append(audits, e) }})
	it := Item{Upstream: "imp", Kind: store.PinTool, Name: "echo", Hash: "h1", Rules: []string{"shadowing"}, RulesVersion: "v",
		Findings: []store.GuardFinding{{Rule: "shadowing", Explain: `takes the name of tool "echo" of upstream "ev"`, Match: "echo"}}}
	for range 3 {
		b.Flagged(t.Context(), it)
	}
	it2 := it
	it2.Rules = []string{"shadowing", "conceal"}
	b.Flagged(t.Context(), it2) // another verdict: audited
	it3 := it2
	it3.Hash = "h2"
	b.Flagged(t.Context(), it3) // another definition: audited
	if len(audits) != 3 {
		t.Fatalf("audits = %d, want 3", len(audits))
	}
	a := audits[0]
	if a.Action != "guard.flag" || a.Target != "guard:imp/tool/echo" || a.Outcome != "ok" || !strings.Contains(string(a.Detail), `of upstream \"ev\"`) {
		t.Errorf("audit %+v %s", a, a.Detail)
	}
	if b.Pending("imp") != 0 {
		t.Error("a flagged item is pending")
	}
}
