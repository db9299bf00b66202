package route

import (
	"context"
	"sync/atomic"
)

// Attempt tells the route stage what happened to one attempt on a target:
// the gateway got a connection for the request (Sent), the request was
// handed to that connection (Dispatch) and at least one dispatch may have
// reached the upstream, or the target answered with its own error
// (Answered). The terminal fills it in; route reads it to decide whether
// the call may fall back.
type Attempt struct {
	Sent, Answered        atomic.Bool
	dispatched, maybeSent atomic.Bool
}

// Dispatch records one dispatch of the request; maybeSent is false when
// the dispatch certainly failed before the request left the gateway. A
// nil Attempt records nothing.
func (a *Attempt) Dispatch(maybeSent bool) {
	if a == nil {
		return
	}
	a.dispatched.Store(true)
	if maybeSent {
		a.maybeSent.Store(true)
	}
}

// MayHaveRun reports whether the upstream may have received the request:
// a connection was obtained and the request was dispatched (or, if it was
// not, we cannot tell) and not every dispatch failed before sending.
func (a *Attempt) MayHaveRun() bool {
	return a.Sent.Load() && (!a.dispatched.Load() || a.maybeSent.Load())
}

type attemptKey struct{}

// WithAttempt returns ctx carrying a new Attempt.
func WithAttempt(ctx context.Context) (context.Context, *Attempt) {
	a := &Attempt{}
	return context.WithValue(ctx, attemptKey{}, a), a
}

// AttemptFrom returns the Attempt ctx carries, or nil.
func AttemptFrom(ctx context.Context) *Attempt {
	a, _ := ctx.Value(attemptKey{}).(*Attempt)
	return a
}
