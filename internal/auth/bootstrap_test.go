package auth

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

func setGetenv(s *Service, vars map[string]string) {
	s.getenv = func(k string) string { return vars[k] }
}

func TestBootstrapGeneratedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	setGetenv(e.svc, nil)
	var out bytes.Buffer
	ok, err := e.svc.Bootstrap(context.Background(), &out)
	if err != nil || !ok {
		t.Fatalf("Bootstrap = %v, %v", ok, err)
	}
	// The key is alone on its own line.
	var key string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, KeyPrefix) {
			if key != "" {
				t.Fatalf("two key lines in %q", out.String())
			}
			key = line
		}
	}
	if len(key) != len(KeyPrefix)+40 {
		t.Fatalf("no key line in %q", out.String())
	}
	if !strings.Contains(out.String(), "shown only now") || !strings.Contains(out.String(), "no password") {
		t.Errorf("message %q", out.String())
	}
	p := mustAuth(t, e.svc, key, testIP)
	if p.Role != principal.RoleOwner || !p.Operator || p.TenantName != "default" || p.Plan != "enterprise" {
		t.Fatalf("principal %+v", p)
	}
	ctx := context.Background()
	vs, err := e.st.ListVirtualServers(ctx, p.TenantID)
	if err != nil || len(vs) != 1 || vs[0].Name != "all" || strings.Join(vs[0].Upstreams, ",") != "*" {
		t.Fatalf("virtual servers %+v, %v", vs, err)
	}
	u, err := e.st.GetUserByName(ctx, p.TenantID, "owner")
	if err != nil || u.Role != principal.RoleOwner || u.PasswordHash != "" {
		t.Fatalf("owner %+v, %v", u, err)
	}
	// No password: login is impossible.
	if _, err := e.svc.Login(ctx, "default", "owner", "", testIP); err == nil {
		t.Fatal("login without a password worked")
	}
	// Idempotent: a second start does nothing and prints nothing.
	out.Reset()
	ok, err = e.service().Bootstrap(ctx, &out)
	if err != nil || ok || out.Len() != 0 {
		t.Fatalf("second Bootstrap = %v, %v, %q", ok, err, out.String())
	}
	if n, _ := e.st.CountTenants(ctx); n != 1 {
		t.Fatalf("%d tenants", n)
	}
}

func TestBootstrapFromEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, newTestStore(t))
	const key, pw = "env-provided-admin-key-0123456789", "an owner password"
	setGetenv(e.svc, map[string]string{"TEST_ADMIN_KEY": key, "TEST_ADMIN_PASSWORD": pw})
	var out bytes.Buffer
	ok, err := e.svc.Bootstrap(context.Background(), &out)
	if err != nil || !ok {
		t.Fatalf("Bootstrap = %v, %v", ok, err)
	}
	if strings.Contains(out.String(), key) || strings.Contains(out.String(), pw) {
		t.Fatalf("output shows a secret from the environment: %q", out.String())
	}
	if p := mustAuth(t, e.svc, key, testIP); p.Role != principal.RoleOwner {
		t.Fatalf("principal %+v", p)
	}
	tok, err := e.svc.Login(context.Background(), "default", "owner", pw, testIP)
	if err != nil {
		t.Fatal(err)
	}
	if p := mustAuth(t, e.svc, tok.AccessToken, testIP); p.Role != principal.RoleOwner || !p.Operator {
		t.Fatalf("principal %+v", p)
	}
}

func TestBootstrapBadEnvironment(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"short password": {"TEST_ADMIN_PASSWORD": "short"},
		"short key":      {"TEST_ADMIN_KEY": "short"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, newTestStore(t))
			setGetenv(e.svc, vars)
			if ok, err := e.svc.Bootstrap(context.Background(), nil); err == nil || ok {
				t.Fatalf("Bootstrap = %v, %v; want an error", ok, err)
			}
			if n, _ := e.st.CountTenants(context.Background()); n != 0 {
				t.Fatalf("a failed bootstrap left %d tenants", n)
			}
		})
	}
}

// TestBootstrapConcurrent: several replicas, each with its own store
// connection, bootstrap one empty database at once; exactly one does it.
func TestBootstrapConcurrent(t *testing.T) {
	t.Parallel()
	for _, be := range sharedBackends() {
		t.Run(be.name, func(t *testing.T) {
			const n = 4
			stores := be.open(t, n)
			e := newEnv(t, stores[0])
			svcs := make([]*Service, n)
			for i := range svcs {
				svcs[i] = e.service(onStore(stores[i]))
				setGetenv(svcs[i], nil)
			}
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				wins  int
				start = make(chan struct{})
			)
			for _, s := range svcs {
				wg.Go(func() {
					<-start
					var out bytes.Buffer
					ok, err := s.Bootstrap(context.Background(), &out)
					if err != nil {
						t.Errorf("Bootstrap: %v", err)
					}
					if ok != strings.Contains(out.String(), KeyPrefix) {
						t.Errorf("Bootstrap = %v with output %q", ok, out.String())
					}
					mu.Lock()
					defer mu.Unlock()
					if ok {
						wins++
					}
				})
			}
			close(start)
			wg.Wait()
			if wins != 1 {
				t.Fatalf("%d replicas bootstrapped, want 1", wins)
			}
			ctx := context.Background()
			if c, _ := e.st.CountTenants(ctx); c != 1 {
				t.Fatalf("%d tenants", c)
			}
			tn, err := e.st.GetTenantByName(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			keys, err := e.st.ListKeys(ctx, tn.ID)
			if err != nil || len(keys) != 1 {
				t.Fatalf("keys %+v, %v", keys, err)
			}
			users, err := e.st.ListUsers(ctx, tn.ID)
			if err != nil || len(users) != 1 {
				t.Fatalf("users %+v, %v", users, err)
			}
		})
	}
}

// TestBootstrapNotAgain: a store that was set up (its audit log has
// entries) and lost every tenant is not set up again silently: the next
// start is refused with how to recover, and Recover does it on purpose.
func TestBootstrapNotAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, newTestStore(t))
	setGetenv(e.svc, nil)
	f, err := e.svc.FirstStartOn(ctx)
	if err != nil || f == nil || !strings.HasPrefix(f.Key, KeyPrefix) {
		t.Fatalf("FirstStartOn = %+v, %v", f, err)
	}
	if len(e.audit.find("store.bootstrap", "ok")) != 1 {
		t.Errorf("the bootstrap is not audited")
	}
	// The gateway's audit log (not this test's fake) has an entry.
	if err := e.st.AppendAudit(ctx, []*store.AuditEntry{{Time: time.Now(), Actor: "system", ActorKind: "system", Action: "store.bootstrap", Outcome: "ok"}},
		func(a *store.AuditEntry) { a.Hash = []byte("h") }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Recover(ctx); err == nil || !strings.Contains(err.Error(), "nothing to recover") {
		t.Errorf("Recover of a store with tenants: %v", err)
	}
	ts, _ := e.st.ListTenants(ctx)
	for _, tn := range ts {
		if err := e.st.DeleteTenant(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	ok, err := e.service().Bootstrap(ctx, &out)
	if ok || !errors.Is(err, ErrSetUpBefore) || !strings.Contains(err.Error(), "mcpedge bootstrap") || out.Len() != 0 {
		t.Fatalf("Bootstrap of an emptied store = %v, %v, %q", ok, err, out.String())
	}
	if n, _ := e.st.CountTenants(ctx); n != 0 {
		t.Fatalf("%d tenants made", n)
	}
	f, err = e.service().Recover(ctx)
	if err != nil || f == nil || f.Key == "" {
		t.Fatalf("Recover = %+v, %v", f, err)
	}
	if p := mustAuth(t, e.svc, f.Key, testIP); p.Role != principal.RoleOwner || !p.Operator {
		t.Errorf("recovered key: %+v", p)
	}
}

// TestOwnerKeyFile: WriteKeyFile writes the key alone, mode 0600, and
// never over an existing file; the notice names the file, not the key.
func TestOwnerKeyFile(t *testing.T) {
	t.Parallel()
	f := &FirstStart{Tenant: "default", User: "owner", Key: KeyPrefix + "secret"}
	path := filepath.Join(t.TempDir(), "owner-key")
	if err := f.WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	st, _ := os.Stat(path)
	if err != nil || string(b) != f.Key+"\n" || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %q %v %v", b, st.Mode(), err)
	}
	if err := f.WriteKeyFile(path); err == nil {
		t.Error("an existing key file was overwritten")
	}
	var out bytes.Buffer
	f.WriteNotice(&out, path)
	if strings.Contains(out.String(), f.Key) || !strings.Contains(out.String(), path) {
		t.Errorf("notice %q", out.String())
	}
}
