package events

import (
	"strings"
	"testing"
)

func TestKnown(t *testing.T) {
	for _, ok := range []string{"*", KeyCreated, QueueEntryFailed, "invoice.paid", "invoice.payment_failed"} {
		if !Known(ok) {
			t.Errorf("Known(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "key", "key.*", "invoice.", "invoice.Paid", "invoice.a b", "KEY.CREATED"} {
		if Known(bad) {
			t.Errorf("Known(%q) = true", bad)
		}
	}
}

func TestIDs(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b || !strings.HasPrefix(a, "evt_") || len(a) != 30 {
		t.Errorf("NewID: %q, %q", a, b)
	}
	if DerivedID("quota.warning", "t1", "2026-12") != DerivedID("quota.warning", "t1", "2026-12") {
		t.Error("DerivedID is not stable")
	}
	// The separator keeps ("ab","c") and ("a","bc") apart.
	if DerivedID("ab", "c") == DerivedID("a", "bc") {
		t.Error("DerivedID collides on a shifted boundary")
	}
}
