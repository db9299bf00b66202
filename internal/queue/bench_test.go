package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchArgs are the arguments of a typical small tool call (about 200
// bytes).
var benchArgs = json.RawMessage(`{"path":"/var/lib/sensors/2026-11-02/temperature.csv","from":"2026-11-02T00:00:00Z","to":"2026-11-02T23:59:59Z","columns":["time","celsius","humidity"],"format":"csv","limit":1000}`)

// unbounded lifts the bounds so a benchmark measures the writes.
func unbounded() *Options {
	return &Options{MaxEntries: 1 << 40, MaxBytes: 1 << 50, TenantMaxEntries: 1 << 40, TenantMaxBytes: 1 << 50}
}

// BenchmarkEnqueue measures durable enqueues (each returns after its
// commit with synchronous=FULL) from 4, 16 and 64 goroutines at once,
// which group commit batches; "enqueues/s" is the rate, "entries/commit"
// the mean batch.
func BenchmarkEnqueue(b *testing.B) {
	for _, g := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			q := openQueue(b, b.TempDir(), unbounded())
			b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
			var n atomic.Int64
			commits := q.commits.Load()
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := q.Enqueue(b.Context(), Entry{Tenant: fmt.Sprint("t", i%8), Target: fmt.Sprint("up", i%4), Tool: "read", Arguments: benchArgs}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
			b.ReportMetric(float64(b.N)/float64(q.commits.Load()-commits), "entries/commit")
		})
	}
}

// BenchmarkEnqueueSerial measures one goroutine enqueueing, each Enqueue
// waiting for its own commit: the rate of a single writer, bound by the
// disk's flush latency.
func BenchmarkEnqueueSerial(b *testing.B) {
	q := openQueue(b, b.TempDir(), unbounded())
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if _, err := q.Enqueue(b.Context(), Entry{Tenant: "t", Target: fmt.Sprint("up", i%4), Tool: "read", Arguments: benchArgs}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
}

// BenchmarkDeliver measures draining a backlog to four targets at once
// (claim, call, complete: two commits per entry, shared across targets).
func BenchmarkDeliver(b *testing.B) {
	const targets = 4
	var left atomic.Int64
	left.Store(int64(b.N))
	done := make(chan struct{})
	opts := unbounded()
	opts.OnDone = func(Entry) {
		if left.Add(-1) == 0 {
			close(done)
		}
	}
	q := openQueue(b, b.TempDir(), opts)
	for i := range b.N {
		if _, err := q.Enqueue(b.Context(), Entry{Tenant: "t", Target: fmt.Sprint("up", i%targets), Tool: "read", Arguments: benchArgs}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	start := time.Now()
	b.ResetTimer()
	for i := range targets {
		go q.Deliver(ctx, fmt.Sprint("up", i), func(ctx context.Context, e *Entry) (json.RawMessage, error) {
			return json.RawMessage(`{"ok":true}`), nil
		})
	}
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
