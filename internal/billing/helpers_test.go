package billing

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/billing/billingtest"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/sqlite"
)

const (
	testKey   = "sk_test_51NeverShowThisSecretKeyAnywhere0123456789"
	testWhsec = "whsec_test_signing_secret_0123456789abcdef"
)

type notice struct{ kind, tenant string }

type fixture struct {
	t      testing.TB
	st     *sqlite.Store
	svc    *Service
	rec    *billingtest.Recorder
	mu     sync.Mutex
	now    time.Time
	audits []store.AuditEntry
	notes  []notice
	logs   *bytes.Buffer
}

func (f *fixture) Notify(_ context.Context, kind, tenant string, _ any) {
	f.mu.Lock()
	f.notes = append(f.notes, notice{kind, tenant})
	f.mu.Unlock()
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fixture) auditActions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.audits {
		out = append(out, e.Action+":"+e.Outcome)
	}
	return out
}

func (f *fixture) notices() []notice {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]notice(nil), f.notes...)
}

func testConfig(apiBase string) config.BillingStripe {
	return config.BillingStripe{
		Enabled: true, SecretKeyEnv: "STRIPE_SECRET_KEY", WebhookSecretEnv: "STRIPE_WEBHOOK_SECRET",
		APIBase: apiBase, MeterEvent: "mcpedge_tool_calls", Prices: map[string]string{"pro": "price_pro", "enterprise": "price_ent"},
		FreePlan: "free", GracePeriod: config.Duration(72 * time.Hour), ReportInterval: config.Duration(time.Minute),
		WebhookTolerance: config.Duration(5 * time.Minute),
	}
}

// newFixture opens a fresh SQLite store and a service talking to
// stripe-mock through a recorder (apiBase "" : that; otherwise apiBase).
func newFixture(t testing.TB, apiBase string) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Date(2026, 11, 22, 10, 20, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	f.st = st
	if apiBase == "" {
		f.rec = billingtest.NewRecorder(t, billingtest.StartStripeMock(t))
		apiBase = f.rec.URL
	}
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{mu: &logMu, w: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env := map[string]string{"STRIPE_SECRET_KEY": testKey, "STRIPE_WEBHOOK_SECRET": testWhsec}
	f.svc, err = New(Options{
		Config: testConfig(apiBase), Store: st, Notifier: f, Log: log, Now: f.clock, Settle: 15 * time.Minute, Holder: "test",
		Getenv: func(k string) string { return env[k] },
		Audit: func(_ context.Context, e *store.AuditEntry) {
			f.mu.Lock()
			f.audits = append(f.audits, *e)
			f.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) tenant(name, plan string, operator bool) *store.Tenant {
	f.t.Helper()
	tn := &store.Tenant{Name: name, Plan: plan, Operator: operator}
	if err := f.st.CreateTenant(f.t.Context(), tn); err != nil {
		f.t.Fatal(err)
	}
	return tn
}

// account stores an account for tn directly (no Stripe call).
func (f *fixture) account(tn *store.Tenant, customer string) *store.BillingAccount {
	f.t.Helper()
	a := &store.BillingAccount{TenantID: tn.ID, CustomerID: customer, SubscriptionID: "sub_" + customer, Plan: tn.Plan, PriceID: "price_" + tn.Plan,
		Status: "active", ReportedThrough: f.clock().Truncate(time.Hour)}
	if err := f.st.CreateBillingAccount(f.t.Context(), a); err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) plan(tn *store.Tenant) string {
	f.t.Helper()
	got, err := f.st.GetTenant(f.t.Context(), tn.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return got.Plan
}

func (f *fixture) acct(tn *store.Tenant) *store.BillingAccount {
	f.t.Helper()
	a, err := f.st.GetBillingAccount(f.t.Context(), tn.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) usage(tn *store.Tenant, at time.Time, outcome string, n int64) {
	f.t.Helper()
	err := f.st.AddUsageRecords(f.t.Context(), []store.UsageRecord{{TenantID: tn.ID, Hour: at, Actor: "k1", ActorKind: "key", Upstream: "u", Tool: "t", Outcome: outcome, Count: n}})
	if err != nil {
		f.t.Fatal(err)
	}
}

func storeFilter(tenantID string) store.UsageFilter { return store.UsageFilter{TenantID: tenantID} }
