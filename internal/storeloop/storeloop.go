// Package storeloop runs the loop of an in-memory cache kept in step with
// the store, as tool pinning (internal/pin) and the guard's quarantine
// (internal/quarantine) keep theirs: what this process decided is written
// in the background, and what other processes decided is reloaded on a
// poll. A failed write is retried with a growing delay (at most a minute)
// while the cache in memory stays in force.
package storeloop

import (
	"context"
	"time"
)

// Loop is what Run drives.
type Loop struct {
	// Poll is how often Load runs.
	Poll time.Duration
	// Wake, when it receives, asks for a Flush now (new entries to write).
	Wake <-chan struct{}
	// Load reloads the cache from the store; Flush writes what is not
	// written yet.
	Load, Flush func(context.Context) error
	// LoadFailed and FlushFailed report errors (not those of a ctx that
	// ended); FlushFailed is told when the write is tried again.
	LoadFailed  func(err error)
	FlushFailed func(err error, retryIn time.Duration)
}

// maxBackoff bounds the delay between retries of a failed write.
const maxBackoff = time.Minute

// Run runs l until ctx is done: a Load every Poll, and a Flush after each
// Load, wake-up or retry.
func Run(ctx context.Context, l Loop) {
	poll := time.NewTicker(l.Poll)
	defer poll.Stop()
	var retry <-chan time.Time
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if err := l.Load(ctx); err != nil && ctx.Err() == nil {
				l.LoadFailed(err)
			}
		case <-l.Wake:
		case <-retry:
			retry = nil
		}
		if err := l.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.FlushFailed(err, backoff)
			if retry == nil {
				retry = time.After(backoff)
				backoff = min(2*backoff, maxBackoff)
			}
		} else {
			backoff = time.Second
		}
	}
}
