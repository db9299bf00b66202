package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/changebus"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/pin"
)

// pinLoadTimeout bounds the first load of the pins at start: past it the
// gateway starts anyway and serves catalogs unverified (withheld under
// pin = "block") until a later load succeeds.
const pinLoadTimeout = 10 * time.Second

// startPins turns tool pinning on for g (see docs/guardrails.md): the
// pins are loaded from the store, new pins and offered changes are
// written to it in the background, and approvals made elsewhere are picked
// up every pin.DefaultPoll. Call it before g.Start; stop flushes what is
// not written yet (within 5 s).
//
// On an edge (link not nil) the pins are its fleet's, kept on its hub
// (edge.Pins), with the edge's own store as the copy it falls back on.
func startPins(ctx context.Context, g *gateway.Gateway, sec *securityStack, link *edgeLink, reg prometheus.Registerer, log *slog.Logger) (p *pin.Pinner, stop func()) {
	var st pin.Store = sec.Store
	if link != nil {
		st = link.link.PinStore(sec.Store)
	}
	o := pin.Options{Store: st, Audit: sec.Audit.Record, Registerer: reg, Log: log, Changed: g.PinsChanged}
	if pub := sec.events(); pub != nil {
		o.OnChange = func(c pin.Change) {
			// One event per offered definition: replicas seeing the same
			// change make the same id.
			e := events.Event{ID: events.DerivedID(events.PinChanged, c.Upstream, c.Kind, c.Name, c.OfferedHash), Type: events.PinChanged,
				Data: map[string]any{"upstream": c.Upstream, "kind": c.Kind, "name": c.Name, "policy": c.Policy, "served": c.Served,
					"pinned_hash": c.PinnedHash, "offered_hash": c.OfferedHash}}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := pub.Publish(ctx, e); err != nil {
					log.Warn("publishing a pin change event failed", "upstream", c.Upstream, "name", c.Name, "error", err)
				}
			}()
		}
	}
	p = pin.New(o)
	loadCtx, cancel := context.WithTimeout(ctx, pinLoadTimeout)
	if err := p.Load(loadCtx); err != nil {
		log.Error("tool pinning: pins not loaded; catalogs are served unverified (withheld under pin = \"block\") until they are", "err", err.Error())
	}
	cancel()
	g.SetPinner(p)
	sec.Changes.On(changebus.TopicPins, func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), pinLoadTimeout)
			defer cancel()
			if err := p.Refresh(ctx); err != nil {
				log.Warn("tool pinning: pins not reloaded after another replica's decision; the next poll does it", "err", err.Error())
			}
		}()
	})
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { p.Run(runCtx); close(done) }()
	return p, func() {
		stopRun()
		<-done
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Flush(flushCtx); err != nil {
			log.Error("tool pinning: pins not written before exit; they are pinned again when next seen", "err", err.Error())
		}
	}
}

// pinsRefresher is admin.OpsOptions.PinsChanged for p: a decision made
// through this process's admin API is served at once.
func pinsRefresher(p *pin.Pinner, changes *changebus.Bus, log *slog.Logger) func(context.Context) {
	if p == nil {
		return nil
	}
	return func(ctx context.Context) {
		if err := p.Refresh(ctx); err != nil {
			log.Warn("tool pinning: pins not reloaded after a decision; the next poll does it", "err", err.Error())
		}
		changes.Announce(ctx, changebus.TopicPins) // the other replicas reload now (with Redis)
	}
}

func runPinsList(c *adminCtx, pos []string) error {
	state := ""
	if c.pending {
		state = admin.PinStatePending
	}
	ps, err := c.ops.ListPins(c.ctx, c.upstream, state)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ps)
	}
	rows := make([][]string, len(ps))
	for i, p := range ps {
		rows[i] = []string{p.Upstream, p.Kind, p.Name, p.State, short(p.Hash), cmdline.Time(p.PinnedAt), short(p.OfferedHash), cmdline.Time(p.OfferedAt)}
	}
	return c.table("UPSTREAM\tKIND\tNAME\tSTATE\tHASH\tPINNED\tOFFERED HASH\tOFFERED", rows)
}

// short is the first 12 hex digits of a hash, enough to tell changes
// apart in a table; "-" for none.
func short(h string) string {
	switch {
	case h == "":
		return "-"
	case len(h) > 12:
		return h[:12]
	}
	return h
}

func runPinsDiff(c *adminCtx, pos []string) error {
	p, err := c.ops.GetPin(c.ctx, pos[0], pos[1], pos[2])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(p)
	}
	fmt.Fprintf(c.stdout, "%s %q of upstream %s: %s\npinned  %s at %s\n", p.Kind, p.Name, p.Upstream, p.State, p.Hash, cmdline.Time(p.PinnedAt))
	if p.OfferedHash == "" {
		fmt.Fprintln(c.stdout, "the upstream offers the pinned definition: nothing to approve")
		fmt.Fprint(c.stdout, pin.Pretty(p.Definition))
		return nil
	}
	fmt.Fprintf(c.stdout, "offered %s at %s\n", p.OfferedHash, cmdline.Time(p.OfferedAt))
	fmt.Fprint(c.stdout, p.Diff)
	if p.State == admin.PinStatePending {
		fmt.Fprintf(c.stdout, "approve exactly this change with: mcpedge pins approve %s %s %q --hash %s\n", p.Upstream, p.Kind, p.Name, p.OfferedHash)
	}
	return nil
}

func runPinsApprove(c *adminCtx, pos []string) error {
	return c.decidePin("pins approve", "approved", pos, c.ops.ApprovePin)
}

func runPinsReject(c *adminCtx, pos []string) error {
	return c.decidePin("pins reject", "rejected", pos, c.ops.RejectPin)
}

func (c *adminCtx) decidePin(name, verb string, pos []string, do func(context.Context, admin.PinDecision) (*admin.PinInfo, error)) error {
	d := admin.PinDecision{Upstream: pos[0], Kind: pos[1], Name: pos[2], Hash: c.hash}
	p, err := do(c.ctx, d)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(p)
	}
	if verb == "approved" {
		fmt.Fprintf(c.stdout, "approved: %s %q of upstream %s is now pinned as %s\n", p.Kind, p.Name, p.Upstream, p.Hash)
	} else {
		fmt.Fprintf(c.stdout, "rejected: %s %q of upstream %s stays pinned as %s\n", p.Kind, p.Name, p.Upstream, p.Hash)
	}
	fmt.Fprintf(c.stdout, "running gateways on this store serve it within %s\n", pin.DefaultPoll)
	return nil
}
