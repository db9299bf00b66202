package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

func TestMain(m *testing.M) {
	// Production argon2id parameters cost 19 MiB and tens of
	// milliseconds per hash (much more under -race); tests use tiny ones
	// except TestPasswordProductionParams.
	defaultArgon = argonParams{memory: 64, time: 1, threads: 1, saltLen: 16, keyLen: 32}
	os.Exit(m.Run())
}

// clock is a settable time source (lock-free, so that it does not add
// contention to parallel benchmarks).
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UTC().Truncate(time.Millisecond).UnixNano())
	return c
}

func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// auditLog collects audit entries.
type auditLog struct {
	mu      sync.Mutex
	entries []store.AuditEntry
}

func (a *auditLog) add(_ context.Context, e *store.AuditEntry) {
	a.mu.Lock()
	a.entries = append(a.entries, *e)
	a.mu.Unlock()
}

// find returns the entries with action and outcome.
func (a *auditLog) find(action, outcome string) []store.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []store.AuditEntry
	for _, e := range a.entries {
		if e.Action == action && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

func (a *auditLog) last() store.AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) == 0 {
		return store.AuditEntry{}
	}
	return a.entries[len(a.entries)-1]
}

// env is one Service over one store with a controllable clock.
type env struct {
	t     testing.TB
	st    store.Store
	svc   *Service
	clock *clock
	audit *auditLog
	cfg   config.Auth
}

func testConfig() config.Auth {
	return config.Auth{
		Mode:                 config.AuthRequired,
		Issuer:               "mcpedge",
		Audience:             "mcpedge",
		AccessTTL:            config.Duration(15 * time.Minute),
		RefreshTTL:           config.Duration(24 * time.Hour),
		KeyRotateOverlap:     config.Duration(time.Hour),
		RevocationPoll:       config.Duration(time.Hour), // tests poll explicitly
		LockoutThreshold:     3,
		LockoutBase:          config.Duration(time.Minute),
		LockoutMax:           config.Duration(10 * time.Minute),
		BootstrapTenant:      "default",
		BootstrapKeyEnv:      "TEST_ADMIN_KEY",
		BootstrapPasswordEnv: "TEST_ADMIN_PASSWORD",
	}
}

type envOpt func(*Options)

func newEnv(t testing.TB, st store.Store, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, st: st, clock: newClock(), audit: &auditLog{}, cfg: testConfig()}
	e.svc = e.service(opts...)
	return e
}

// service returns another Service over the same store and clock.
func (e *env) service(opts ...envOpt) *Service {
	e.t.Helper()
	o := Options{
		Store:  e.st,
		Config: e.cfg,
		Audit:  e.audit.add,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    e.clock.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := New(context.Background(), o)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// tenant creates a tenant.
func (e *env) tenant(name string, mod ...func(*store.Tenant)) *store.Tenant {
	e.t.Helper()
	t := &store.Tenant{Name: name, Plan: "free"}
	for _, f := range mod {
		f(t)
	}
	if err := e.st.CreateTenant(context.Background(), t); err != nil {
		e.t.Fatalf("CreateTenant: %v", err)
	}
	return t
}

// user creates a user with a password ("" for none).
func (e *env) user(tenantID, name, role, password string) *store.User {
	e.t.Helper()
	u := &store.User{TenantID: tenantID, Name: name, Role: role}
	if password != "" {
		h, err := HashPassword(password)
		if err != nil {
			e.t.Fatal(err)
		}
		u.PasswordHash = h
	}
	if err := e.st.CreateUser(context.Background(), u); err != nil {
		e.t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// key creates an API key and returns its secret.
func (e *env) key(tenantID, role string, expiresIn time.Duration, mod ...func(*store.APIKey)) (string, *store.APIKey) {
	e.t.Helper()
	k := &store.APIKey{TenantID: tenantID, Name: "test", Role: role}
	for _, f := range mod {
		f(k)
	}
	secret, err := e.svc.CreateKey(context.Background(), k, expiresIn)
	if err != nil {
		e.t.Fatalf("CreateKey: %v", err)
	}
	return secret, k
}

func (e *env) updateTenant(t *store.Tenant) {
	e.t.Helper()
	if err := e.st.UpdateTenant(context.Background(), t); err != nil {
		e.t.Fatalf("UpdateTenant: %v", err)
	}
}

// mustAuth authenticates and fails the test on error.
func mustAuth(t testing.TB, s *Service, tok, ip string) *principal.Principal {
	t.Helper()
	p, err := s.Authenticate(context.Background(), tok, ip)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

// wantErr checks that err wraps want and, if reason is set, carries it.
func wantErr(t testing.TB, err, want error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want an error wrapping %v", err, want)
	}
	if reason != "" && Reason(err) != reason {
		t.Fatalf("reason %q, want %q (err %v)", Reason(err), reason, err)
	}
}

const testIP = "192.0.2.10"
