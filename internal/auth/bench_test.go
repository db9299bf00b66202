package auth

import (
	"context"
	"testing"

	"github.com/mcpedge/mcpedge/internal/principal"
)

// BenchmarkAuthenticateKey is the hot path: a key verified within the
// cache TTL (the benchmark's clock does not move).
func BenchmarkAuthenticateKey(b *testing.B) {
	e := newEnv(b, newTestStore(b))
	tn := e.tenant("acme")
	secret, _ := e.key(tn.ID, principal.RoleMember, 0)
	ctx := context.Background()
	mustAuth(b, e.svc, secret, testIP)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Authenticate(ctx, secret, testIP); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAuthenticateKeyUncached measures a key looked up in the store
// on every call (the cache is emptied each time).
func BenchmarkAuthenticateKeyUncached(b *testing.B) {
	e := newEnv(b, newTestStore(b))
	tn := e.tenant("acme")
	secret, _ := e.key(tn.ID, principal.RoleMember, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e.svc.keys.deleteFunc(func(string, *keyEntry) bool { return true })
		e.svc.tenants.deleteFunc(func(string, *tenantEntry) bool { return true })
		if _, err := e.svc.Authenticate(ctx, secret, testIP); err != nil {
			b.Fatal(err)
		}
	}
}
