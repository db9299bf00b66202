// Package storetest is the conformance suite of package store: the one set
// of tests every implementation must pass. It checks the contracts written
// in store.go, so an implementation that passes it may be used by the rest
// of the gateway without knowing which one it is.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// open must return a fresh, empty, migrated store and close it at the end of
// t (t.Cleanup). Subtests run in parallel, each with its own store.
package storetest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcpedge/mcpedge/internal/store"
)

// Run runs the whole suite.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Fresh", testFresh},
		{"Tenants", testTenants},
		{"Users", testUsers},
		{"RecordLogin", testRecordLogin},
		{"LastOwner", testLastOwner},
		{"LastOwnerConcurrent", testLastOwnerConcurrent},
		{"Keys", testKeys},
		{"RevokeKey", testRevokeKey},
		{"RotateKey", testRotateKey},
		{"TouchKeys", testTouchKeys},
		{"RefreshTokens", testRefreshTokens},
		{"RevokeUserSessions", testRevokeUserSessions},
		{"Plans", testPlans},
		{"VirtualServers", testVirtualServers},
		{"Rules", testRules},
		{"PolicyVersion", testPolicyVersion},
		{"Revocations", testRevocations},
		{"Audit", testAudit},
		{"AuditConcurrent", testAuditConcurrent},
		{"ListAudit", testListAudit},
		{"Usage", testUsage},
		{"Metering", testMetering},
		{"Lattices", testLattices},
		{"Secrets", testSecrets},
		{"Devices", testDevices},
		{"EnrollTokens", testEnrollTokens},
		{"Nonces", testNonces},
		{"Pins", testPins},
		{"PinsConcurrent", testPinsConcurrent},
		{"GuardVerdicts", testGuardVerdicts},
		{"MCPSessions", testMCPSessions},
		{"Webhooks", testWebhooks},
		{"Billing", testBilling},
		{"BillingLease", testBillingLease},
		{"DeleteTenant", testDeleteTenant},
		{"TenantExport", testTenantExport},
		{"TenantErase", testTenantErase},
		{"TenantKeyConcurrent", testTenantKeyConcurrent},
		{"TenantKeyUnsealed", testTenantKeyUnsealed},
		{"TimesUTC", testTimesUTC},
		{"Schedules", testSchedules},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// ---- helpers shared by the tests

// is fails the test unless errors.Is(err, want) (want nil: err is nil).
func is(t *testing.T, err, want error, what string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func ok(t *testing.T, err error, what string) {
	t.Helper()
	is(t, err, nil, what)
}

func diff(t *testing.T, want, got any, what string) {
	t.Helper()
	// nil and empty lists are the same list: the contract does not say
	// which one a store returns.
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// at is a fixed, microsecond-aligned time in a zone other than UTC, so
// tests notice a store that returns local times.
func at(min int) time.Time {
	return time.Date(2026, 11, 22, 10, min, 30, 123456000, time.FixedZone("X", 3600))
}

func mkTenant(t *testing.T, s store.Store, name string) *store.Tenant {
	t.Helper()
	tn := &store.Tenant{Name: name, Plan: "free"}
	ok(t, s.CreateTenant(t.Context(), tn), "CreateTenant "+name)
	return tn
}

func mkUser(t *testing.T, s store.Store, tenantID, name, role string) *store.User {
	t.Helper()
	u := &store.User{TenantID: tenantID, Name: name, Role: role, PasswordHash: "$argon2id$x"}
	ok(t, s.CreateUser(t.Context(), u), "CreateUser "+name)
	return u
}

func newKey(tenantID, prefix string) *store.APIKey {
	return &store.APIKey{
		TenantID: tenantID, Name: "key " + prefix, Prefix: prefix,
		Hash: []byte("hash-of-" + prefix), Role: "member", Scopes: []string{"mcp:call"},
	}
}

func mkKey(t *testing.T, s store.Store, tenantID, prefix string) *store.APIKey {
	t.Helper()
	k := newKey(tenantID, prefix)
	ok(t, s.CreateKey(t.Context(), k), "CreateKey "+prefix)
	return k
}

// Seal is the suite's AppendAudit seal: sha256 over Seq, PrevHash and the
// entry's fields (the real one lives in package audit; the store must not
// care which one it is given).
func Seal(e *store.AuditEntry) { e.Hash = hashOf(e) }

func hashOf(e *store.AuditEntry) []byte {
	h := sha256.New()
	binary.Write(h, binary.BigEndian, e.Seq)
	h.Write(e.PrevHash)
	fmt.Fprintf(h, "|%d|%s|%s|%s|%s|%s|%s|", e.Time.UnixMicro(), e.TenantID, e.Actor, e.ActorKind, e.Action, e.Target, e.Outcome)
	h.Write(e.Detail)
	return h.Sum(nil)
}

// VerifyChain checks that entries are 1…n, linked, and hash correctly.
func VerifyChain(t *testing.T, entries []store.AuditEntry) {
	t.Helper()
	var prev []byte
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has Seq %d, want %d (gap or reorder)", i, e.Seq, i+1)
		}
		if string(e.PrevHash) != string(prev) {
			t.Fatalf("entry %d: PrevHash %x, want the previous entry's hash %x (forked chain)", e.Seq, e.PrevHash, prev)
		}
		if string(e.Hash) != string(hashOf(&e)) {
			t.Fatalf("entry %d: stored hash does not match its content (stored content changed)", e.Seq)
		}
		prev = e.Hash
	}
}
