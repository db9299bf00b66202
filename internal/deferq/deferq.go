// Package deferq connects the gateway's deferred calls to the offline
// queue: [Queue] is the gateway's [gateway.Deferrer] over a
// [*queue.Queue], and [Deliver] delivers queued calls through the
// gateway's upstream connections; [Monitor] counts and observes the queue
// for metrics, /readyz and mcpedge__status. See docs/edge.md, "Wiring the
// queue".
package deferq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/queue"
)

// Queue adapts a *queue.Queue to gateway.Deferrer. Mon, if set, counts
// enqueues and refusals.
type Queue struct {
	Q   *queue.Queue
	Mon *Monitor
}

var _ gateway.Deferrer = Queue{}

// Defer enqueues the call. A bound reached is gateway.ErrQueueFull with
// the queue's message.
func (a Queue) Defer(ctx context.Context, tenant, upstream, tool string, args json.RawMessage, idemKey string) (string, error) {
	id, err := a.Q.Enqueue(ctx, queue.Entry{Tenant: tenant, Target: upstream, Tool: tool, Arguments: args, IdempotencyKey: idemKey})
	if a.Mon != nil {
		if err != nil {
			a.Mon.refused(err)
		} else {
			a.Mon.M.Enqueued.WithLabelValues(upstream).Inc()
		}
	}
	if errors.Is(err, queue.ErrFull) {
		return "", fullError{err}
	}
	return id, err
}

// fullError is the queue's refusal, matching both gateway.ErrQueueFull
// and queue.ErrFull, with the queue's message.
type fullError struct{ error }

func (e fullError) Is(target error) bool { return target == gateway.ErrQueueFull }
func (e fullError) Unwrap() error        { return e.error }

// Status reads the tenant's entry; any other is ErrQueuedNotFound.
func (a Queue) Status(ctx context.Context, tenant, id string) (*gateway.QueuedCall, error) {
	e, err := a.Q.Get(ctx, tenant, id)
	if errors.Is(err, queue.ErrNotFound) {
		return nil, gateway.ErrQueuedNotFound
	}
	if err != nil {
		return nil, err
	}
	return &gateway.QueuedCall{
		ID: e.ID, State: string(e.State), Target: e.Target, Tool: e.Tool,
		Attempts: e.Attempts, LastError: e.LastError, Result: e.Result,
		CreatedAt: e.CreatedAt, DoneAt: e.DoneAt,
	}, nil
}

// Deliver returns the queue's DeliverFunc: each entry is called on its
// upstream through g (breaker, timeouts, connection), with the entry's
// delivery key in _meta["io.mcpedge/idempotency_key"]. The upstream's
// own JSON-RPC error fails the entry for good (it answered), and so does
// the routing policy's refusal (a local-only call of an upstream with no
// local target: only a configuration change could alter that, and
// retrying would keep the entry forever); any other error (unreachable,
// timeout, no target connected) is retried with the queue's backoff; a
// result — also one with isError — is the entry's result.
func Deliver(g *gateway.Gateway) queue.DeliverFunc {
	return func(ctx context.Context, e *queue.Entry) (json.RawMessage, error) {
		// The tenant's routing rules still hold: a local-only tenant's
		// queued call is delivered to a local target only.
		ctx = gateway.WithCallerTenant(ctx, e.Tenant)
		res, err := g.CallUpstream(ctx, e.Target, e.Tool, e.Arguments, map[string]any{gateway.MetaIdempotencyKey: e.DeliveryKey()})
		if err != nil {
			if gateway.IsUpstreamError(err) || gateway.IsRoutingRefused(err) {
				return nil, queue.Permanent(err)
			}
			return nil, err
		}
		if res == nil {
			return nil, fmt.Errorf("upstream %s returned no result", e.Target)
		}
		return json.Marshal(res)
	}
}

// Announce returns an OnDone for the queue's options that tells the
// tenant's connected clients (see gateway.AnnounceQueued).
func Announce(g *gateway.Gateway) func(queue.Entry) {
	return func(e queue.Entry) {
		g.AnnounceQueued(e.Tenant, e.ID, string(e.State), e.Target, e.Tool)
	}
}
