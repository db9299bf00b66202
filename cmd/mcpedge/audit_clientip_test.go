package main

import (
	"context"
	"testing"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestWithAdminClientIP: an entry the credential service records during an
// admin API call (key.create, …) carries the caller's address; an address
// the entry already has is kept.
func TestWithAdminClientIP(t *testing.T) {
	var got []string
	rec := withAdminClientIP(func(_ context.Context, e *store.AuditEntry) { got = append(got, e.ClientIP) })
	ctx := admin.WithClientIP(context.Background(), "203.0.113.7")
	rec(ctx, &store.AuditEntry{Action: "key.create"})
	rec(ctx, &store.AuditEntry{Action: "auth.reject", ClientIP: "198.51.100.1"})
	rec(context.Background(), &store.AuditEntry{Action: "key.create"})
	want := []string{"203.0.113.7", "198.51.100.1", ""}
	if len(got) != len(want) {
		t.Fatalf("recorded %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: client IP %q, want %q", i, got[i], want[i])
		}
	}
}
