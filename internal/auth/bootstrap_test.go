package auth

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
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
