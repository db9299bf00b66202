package upstream

import "context"

// Draining: a reload that replaces an upstream's connection (or removes
// the upstream) lets the calls in flight on the old one finish before it
// is stopped. The gateway holds the upstream for the whole of every call
// it routes to it; Retire refuses new holds and waits for the last one to
// be released.

// Hold marks a call in progress on u. It reports false once u is
// retiring: the caller must then use u's replacement instead. Every
// successful Hold must be followed by one Release.
func (u *Upstream) Hold() bool {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	if u.retiring {
		return false
	}
	u.holds++
	return true
}

// Release ends a Hold.
func (u *Upstream) Release() {
	u.holdMu.Lock()
	defer u.holdMu.Unlock()
	u.holds--
	if u.holds == 0 && u.idle != nil {
		close(u.idle)
		u.idle = nil
	}
}

// Retire refuses new holds and waits until every call holding u has
// released it, or ctx is done. It does not stop u; the caller does, after.
func (u *Upstream) Retire(ctx context.Context) {
	u.holdMu.Lock()
	u.retiring = true
	if u.holds == 0 {
		u.holdMu.Unlock()
		return
	}
	if u.idle == nil {
		u.idle = make(chan struct{})
	}
	idle := u.idle
	u.holdMu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
