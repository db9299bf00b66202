package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/deferq"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/prometheus/client_golang/prometheus"
)

// startQueue opens the offline queue (<data_dir>/queue.db) with the [queue]
// settings, makes it the gateway's place for deferred calls, registers its
// metrics on reg and its health for /readyz and mcpedge__status, and
// delivers queued calls for as long as the gateway runs. The returned stop
// ends the delivery loop, waits for it and closes the queue; it is safe to
// call more than once. A call that fails for good publishes
// events.QueueEntryFailed to pub (nil: none). reader is the queue for GET /api/queue…, nil without
// one.
//
// Without a queue ([queue] enabled = false, no data directory, an
// unusable key) the gateway serves on: calls to an unreachable upstream
// fail as they did before, and /readyz, mcpedge__status and
// mcpedge_queue_open say why there is no queue. The queue never makes the
// gateway unready.
func startQueue(ctx context.Context, cfg *config.Config, g *gateway.Gateway, keys queue.TenantKeys, log *slog.Logger, reg prometheus.Registerer, pub events.Publisher) (stop func(), reader admin.QueueReader) {
	mon := deferq.NewMonitor(reg)
	g.SetQueueHealth(mon.Health)
	if !cfg.Queue.Enabled {
		mon.Unavailable(gateway.QueueDisabled)
		log.Info("offline queue disabled ([queue] enabled = false): calls to an unreachable upstream fail instead of being queued")
		return func() {}, nil
	}
	opts := deferq.Options(cfg.Queue)
	opts.OnDone, opts.Logger = mon.OnDone(queueFailedEvents(pub, log, deferq.Announce(g))), log
	// Entries are sealed with their tenant's data key too, which erasure
	// destroys (docs/design/erasure.md).
	opts.TenantKeys = keys
	q, err := openQueueDB(ctx, cfg.Server.DataDir, true, &opts)
	if err != nil {
		mon.Unavailable(err.Error())
		log.Warn("offline queue unavailable: calls to an unreachable upstream fail instead of being queued", "err", err.Error())
		return func() {}, nil
	}
	mon.Attach(q)
	g.SetDeferrer(deferq.Queue{Q: q, Mon: mon})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Run(runCtx, mon.Deliver(deferq.Deliver(g)))
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			mon.Unavailable("closed: the gateway is shutting down")
			if err := q.Close(); err != nil {
				log.Warn("closing the offline queue", "err", err.Error())
			}
		})
	}, q
}

// openQueueIfPresent opens this machine's offline queue for the command
// line's tenant export and erasure, with the store's tenant keys; nil
// when there is none (no data_dir, or no queue file yet).
func openQueueIfPresent(ctx context.Context, cfg *config.Config, keys queue.TenantKeys) (*queue.Queue, error) {
	if cfg.Server.DataDir == "" || !cfg.Queue.Enabled {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.Server.DataDir, queueDBFile)); err != nil {
		return nil, nil
	}
	opts := deferq.Options(cfg.Queue)
	opts.TenantKeys = keys
	return openQueueDB(ctx, cfg.Server.DataDir, true, &opts)
}
