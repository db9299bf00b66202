package storeloop

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// counter counts calls and fails the first failN of them.
type counter struct {
	mu    sync.Mutex
	n     int
	failN int
}

func (c *counter) call(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n <= c.failN {
		return errors.New("store down")
	}
	return nil
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func start(t *testing.T, l Loop) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, l); close(done) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after ctx ended")
		}
	}
}

func waitCount(t *testing.T, c *counter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls after 10s, want %d", c.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailedFlushRetried: a write that fails is tried again on its own
// (no wake-up, no poll) after the first delay, and reported with it.
func TestFailedFlushRetried(t *testing.T) {
	flush, load := &counter{failN: 1}, &counter{}
	var mu sync.Mutex
	var delays []time.Duration
	wake := make(chan struct{}, 1)
	stop := start(t, Loop{Poll: time.Hour, Wake: wake, Load: load.call, Flush: flush.call,
		LoadFailed: func(error) { t.Error("load failed") },
		FlushFailed: func(_ error, d time.Duration) {
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
		}})
	wake <- struct{}{}
	waitCount(t, flush, 2)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(delays) != 1 || delays[0] != time.Second || load.count() != 0 {
		t.Errorf("delays %v, loads %d; want one failure retried after 1s and no load", delays, load.count())
	}
}

// TestPollLoadsAndFlushes: every poll reloads and then writes; a failed
// reload is reported and the loop goes on.
func TestPollLoadsAndFlushes(t *testing.T) {
	flush, load := &counter{}, &counter{failN: 1}
	var mu sync.Mutex
	loadErrs := 0
	stop := start(t, Loop{Poll: 10 * time.Millisecond, Load: load.call, Flush: flush.call,
		LoadFailed:  func(error) { mu.Lock(); loadErrs++; mu.Unlock() },
		FlushFailed: func(error, time.Duration) { t.Error("flush failed") }})
	waitCount(t, load, 3)
	waitCount(t, flush, 3)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if loadErrs != 1 {
		t.Errorf("%d load errors reported, want 1", loadErrs)
	}
}
