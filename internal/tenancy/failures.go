package tenancy

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureGate slows down guessing: each client address may fail
// authentication failBurst times in a row, then once per failEvery. While
// an address is over that budget its requests are refused with 429 before
// the credential is even looked at, so a flood of bad tokens costs neither
// store lookups nor audit entries. Callers that authenticate successfully
// never spend from it.
type failureGate struct {
	mu   sync.Mutex
	byIP map[string]*rate.Limiter
}

const (
	failBurst   = 30
	failEvery   = time.Second
	maxFailIPs  = 50_000
	throttleMsg = "too many failed authentications from this address"
)

func newFailureGate() *failureGate { return &failureGate{byIP: map[string]*rate.Limiter{}} }

// blocked reports whether ip has no failures left, and when it will.
func (f *failureGate) blocked(ip string, now time.Time) (bool, time.Duration) {
	f.mu.Lock()
	l, ok := f.byIP[ip]
	f.mu.Unlock()
	if !ok {
		return false, 0
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return false, 0
	}
	return true, max(time.Duration((1-tokens)*float64(failEvery)), time.Millisecond)
}

// failed spends one failure of ip.
func (f *failureGate) failed(ip string, now time.Time) {
	f.mu.Lock()
	l, ok := f.byIP[ip]
	if !ok {
		if len(f.byIP) >= maxFailIPs {
			// Bounded memory: forget everyone rather than grow. An
			// attacker gains at most one fresh burst per address.
			clear(f.byIP)
		}
		l = rate.NewLimiter(rate.Every(failEvery), failBurst)
		f.byIP[ip] = l
	}
	f.mu.Unlock()
	l.AllowN(now, 1)
}
