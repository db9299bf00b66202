package tenancy

import (
	"testing"
	"time"
)

func TestFailureGate(t *testing.T) {
	f := newFailureGate()
	now := time.Unix(1000, 0)
	for i := range failBurst {
		if b, _ := f.blocked("198.51.100.7", now); b {
			t.Fatalf("blocked after %d failures, burst is %d", i, failBurst)
		}
		f.failed("198.51.100.7", now)
	}
	b, wait := f.blocked("198.51.100.7", now)
	if !b || wait <= 0 || wait > failEvery {
		t.Fatalf("after the burst: blocked %v, wait %s", b, wait)
	}
	if b, _ := f.blocked("198.51.100.8", now); b {
		t.Fatal("another address is blocked too")
	}
	if b, _ := f.blocked("198.51.100.7", now.Add(failEvery)); b {
		t.Fatal("still blocked after the refill interval")
	}
}
