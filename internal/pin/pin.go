// Package pin is tool pinning, the gateway's defence against rug pulls: an
// upstream that changes what a tool says it does after clients (and people)
// trusted it.
//
// The first time the gateway sees a tool, prompt or resource template of an
// upstream it records the item's definition — the members a model reads
// ([Definition]) — in the store, shared by every replica. When the upstream
// later offers a different definition, the change is recorded as offered,
// audited ("pin.change"), counted, and served according to the upstream's
// policy until an operator approves or rejects it:
//
//   - [Hold] (the default): the pinned definition keeps being served and
//     calls keep working;
//   - [Block]: the item is withheld (not listed, calls refused as unknown);
//   - [Warn]: the offered definition is served; the change is only
//     recorded;
//   - [Off]: nothing is pinned.
//
// # Cost
//
// [Pinner.Serve] runs while the gateway registers a catalog and does no
// I/O: pins are loaded into memory once ([Pinner.Load]) and kept current by
// a poll ([Pinner.Run]); new pins and offers are written to the store by a
// background writer that retries while the store is down. Until the first
// load succeeds, items are served unverified under hold and warn and
// withheld under block.
//
// The package does not know the gateway: it gets an upstream's catalog and
// returns the catalog to serve.
package pin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/storeloop"
)

// Policies (the upstream's "pin" setting).
const (
	Hold  = "hold"
	Block = "block"
	Warn  = "warn"
	Off   = "off"
)

// DefaultPoll is how often [Pinner.Run] reloads the pins when
// Options.Poll is zero: approvals made by the CLI or another replica take
// effect within it.
const DefaultPoll = 10 * time.Second

// maxAuditDiff bounds the diff kept in a "pin.change" audit entry.
const maxAuditDiff = 8 << 10

// Store is the part of the store pinning uses.
type Store interface {
	ListPins(ctx context.Context, upstream string) ([]store.Pin, error)
	GetPin(ctx context.Context, upstream, kind, name string) (*store.Pin, error)
	CreatePin(ctx context.Context, p *store.Pin) error
	OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (*store.Pin, error)
}

// Catalog is what of an upstream's catalog pinning looks at.
type Catalog struct {
	Tools     []*mcp.Tool
	Prompts   []*mcp.Prompt
	Templates []*mcp.ResourceTemplate
}

// Options configure [New].
type Options struct {
	// Store holds the pins. Required.
	Store Store
	// Audit records entries (audit.Logger.Record); nil: not audited.
	Audit func(context.Context, *store.AuditEntry)
	// Registerer gets the metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Log, if nil, is slog.Default().
	Log *slog.Logger
	// Changed is called, on a goroutine of the Pinner, when what Serve
	// would return for an upstream changed other than through Serve (an
	// approval, a rejection, another replica's pin, the first load): the
	// gateway registers that upstream's catalog again. It is called with
	// no lock of the Pinner held, so it may call Serve.
	Changed func(upstream string)
	// OnChange, if set, is called after Serve found an upstream offering
	// a definition other than the pinned one (once per offered
	// definition, as the pin.change audit entry), with no lock held.
	OnChange func(Change)
	// Poll is how often pins are reloaded; 0 means DefaultPoll.
	Poll time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// A Change is a pinned item whose upstream offers another definition.
type Change struct {
	Upstream, Kind, Name string
	// Policy is the upstream's pin policy; Served what the gateway
	// serves meanwhile ("pinned", "withheld" or "offered").
	Policy, Served          string
	PinnedHash, OfferedHash string
}

// Pinner pins upstreams' definitions. It is safe for concurrent use.
type Pinner struct {
	o       Options
	log     *slog.Logger
	metrics metrics

	mu     sync.Mutex
	loaded bool
	pins   map[string]map[key]*store.Pin // upstream -> item -> pin
	// writes are the changes not yet in the store, by upstream and item:
	// the pin as it should be, and whether it must be created first.
	writes map[string]map[key]*write
	// unverified are upstreams served before the first load.
	unverified map[string]bool
	wake       chan struct{}
}

type key struct{ kind, name string }

type write struct {
	pin    store.Pin
	create bool
}

type metrics struct {
	changes     *prometheus.CounterVec
	pinned      *prometheus.CounterVec
	pending     *prometheus.GaugeVec
	storeErrors prometheus.Counter
	unverified  prometheus.Counter
}

// New returns a Pinner; call [Pinner.Load] and then [Pinner.Run].
func New(o Options) *Pinner {
	p := &Pinner{o: o, log: o.Log, pins: map[string]map[key]*store.Pin{}, writes: map[string]map[key]*write{}, unverified: map[string]bool{}, wake: make(chan struct{}, 1)}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.o.Poll <= 0 {
		p.o.Poll = DefaultPoll
	}
	if p.o.Now == nil {
		p.o.Now = time.Now
	}
	p.metrics = metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "pin", Name: "changes_total",
			Help: "Changed definitions of pinned tools, prompts and resource templates seen, by upstream, kind and policy."}, []string{"upstream", "kind", "policy"}),
		pinned: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "pin", Name: "pinned_total",
			Help: "Definitions pinned when first seen, by upstream and kind."}, []string{"upstream", "kind"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "mcpedge", Subsystem: "pin", Name: "pending",
			Help: "Offered changes of pinned definitions awaiting an operator, by upstream."}, []string{"upstream"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "pin", Name: "store_errors_total",
			Help: "Failed reads and writes of pins (retried)."}),
		unverified: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "pin", Name: "unverified_total",
			Help: "Catalogs served before the pins could be loaded from the store."}),
	}
	if r := o.Registerer; r != nil {
		r.MustRegister(p.metrics.changes, p.metrics.pinned, p.metrics.pending, p.metrics.storeErrors, p.metrics.unverified)
	}
	return p
}

// Load reads every pin from the store into memory. Writes not yet stored
// win over what it reads. After the first successful load, upstreams
// served unverified are passed to Options.Changed.
func (p *Pinner) Load(ctx context.Context) error {
	all, err := p.o.Store.ListPins(ctx, "")
	if err != nil {
		p.metrics.storeErrors.Inc()
		return fmt.Errorf("loading pins: %w", err)
	}
	fresh := map[string]map[key]*store.Pin{}
	for i := range all {
		sp := &all[i]
		if fresh[sp.Upstream] == nil {
			fresh[sp.Upstream] = map[key]*store.Pin{}
		}
		fresh[sp.Upstream][key{sp.Kind, sp.Name}] = sp
	}
	p.mu.Lock()
	changed := map[string]bool{}
	for up := range p.unverified {
		changed[up] = true
	}
	clear(p.unverified)
	if p.loaded {
		for _, up := range slices.Collect(maps.Keys(p.pins)) {
			for k, old := range p.pins[up] {
				if p.writes[up][k] != nil {
					continue
				}
				if nw := fresh[up][k]; nw == nil || servedDiffers(old, nw) {
					changed[up] = true
				}
			}
		}
		for up, items := range fresh {
			for k := range items {
				if p.pins[up][k] == nil {
					changed[up] = true
				}
			}
		}
	}
	for up, ws := range p.writes {
		for k, w := range ws {
			if fresh[up] == nil {
				fresh[up] = map[key]*store.Pin{}
			}
			cp := w.pin
			fresh[up][k] = &cp
		}
	}
	p.pins = fresh
	p.loaded = true
	for up := range changed {
		p.updateGaugeLocked(up)
	}
	for up := range p.pins {
		p.updateGaugeLocked(up)
	}
	p.mu.Unlock()
	p.notify(changed)
	return nil
}

// servedDiffers reports whether two states of a pin serve differently or
// count differently (pending).
func servedDiffers(a, b *store.Pin) bool {
	return a.Hash != b.Hash || a.OfferedHash != b.OfferedHash || a.Rejected != b.Rejected
}

func (p *Pinner) notify(ups map[string]bool) {
	if p.o.Changed == nil {
		return
	}
	for _, up := range slices.Sorted(maps.Keys(ups)) {
		p.o.Changed(up)
	}
}

// Refresh reloads the pins now (after an approval or a rejection made in
// this process), notifying Options.Changed of what changed.
func (p *Pinner) Refresh(ctx context.Context) error { return p.Load(ctx) }

// Run writes new pins and offers to the store and reloads the pins every
// Options.Poll, until ctx is done. A failed write is logged, counted and
// retried (with a growing delay, at most a minute); what Serve decided
// meanwhile stands.
func (p *Pinner) Run(ctx context.Context) {
	storeloop.Run(ctx, storeloop.Loop{
		Poll: p.o.Poll, Wake: p.wake, Load: p.Load, Flush: p.flush,
		LoadFailed: func(err error) { p.log.Warn("pins not reloaded; the pins in memory stay in force", "err", err.Error()) },
		FlushFailed: func(err error, retryIn time.Duration) {
			p.log.Error("pins not stored; retrying", "err", err.Error(), "retry_in", retryIn.String())
		},
	})
}

// Flush writes the pending changes now; it is Run's write step, for
// callers (and tests) that need the store current.
func (p *Pinner) Flush(ctx context.Context) error { return p.flush(ctx) }

func (p *Pinner) flush(ctx context.Context) error {
	p.mu.Lock()
	var todo []write
	for _, ws := range p.writes {
		for _, w := range ws {
			todo = append(todo, *w)
		}
	}
	p.mu.Unlock()
	var errs []error
	changed := map[string]bool{}
	for _, w := range todo {
		stored, err := p.store(ctx, w)
		if err != nil {
			p.metrics.storeErrors.Inc()
			errs = append(errs, err)
			continue
		}
		up, k := w.pin.Upstream, key{w.pin.Kind, w.pin.Name}
		p.mu.Lock()
		if cur := p.writes[up][k]; cur != nil && cur.pin.Hash == w.pin.Hash && cur.pin.OfferedHash == w.pin.OfferedHash {
			delete(p.writes[up], k)
			if old := p.pins[up][k]; old == nil || servedDiffers(old, stored) {
				changed[up] = true
			}
			if p.pins[up] == nil {
				p.pins[up] = map[key]*store.Pin{}
			}
			p.pins[up][k] = stored
			p.updateGaugeLocked(up)
		}
		p.mu.Unlock()
	}
	p.notify(changed)
	return errors.Join(errs...)
}

// store writes one change and returns the pin as the store has it.
func (p *Pinner) store(ctx context.Context, w write) (*store.Pin, error) {
	sp := w.pin
	if w.create {
		first := store.Pin{Upstream: sp.Upstream, Kind: sp.Kind, Name: sp.Name, Hash: sp.Hash, Definition: sp.Definition}
		err := p.o.Store.CreatePin(ctx, &first)
		switch {
		case errors.Is(err, store.ErrConflict):
			// Another replica pinned it first: its pin stands, and what
			// this one saw is an offer against it.
		case err != nil:
			return nil, err
		case sp.OfferedHash == "":
			return &first, nil // one write transaction for a new pin
		}
	}
	hash, def := sp.OfferedHash, sp.OfferedDefinition
	if hash == "" {
		hash, def = sp.Hash, sp.Definition
	}
	return p.o.Store.OfferPin(ctx, sp.Upstream, sp.Kind, sp.Name, hash, def, sp.OfferedAt)
}

// Serve returns the catalog to serve for upstream under policy, given the
// catalog the upstream offers, and records what is new or changed. It
// does no I/O (see the package doc); items it cannot fingerprint are
// served as offered under hold and warn, and withheld under block.
func (p *Pinner) Serve(upstream, policy string, c Catalog) Catalog {
	if policy == Off {
		return c
	}
	var entries []*store.AuditEntry
	p.mu.Lock()
	if !p.loaded {
		p.unverified[upstream] = true
		p.mu.Unlock()
		p.metrics.unverified.Inc()
		p.log.Warn("pins are not loaded from the store yet: the catalog is served unverified until they are", "upstream", upstream, "policy", policy)
		if policy == Block {
			return Catalog{}
		}
		return c
	}
	var out Catalog
	var newPins []string
	var changes []Change
	s := &serving{p: p, upstream: upstream, policy: policy, now: p.o.Now(), entries: &entries, newPins: &newPins, changes: &changes}
	out.Tools = serveAll(s, store.PinTool, c.Tools, func(t *mcp.Tool) string { return t.Name })
	out.Prompts = serveAll(s, store.PinPrompt, c.Prompts, func(t *mcp.Prompt) string { return t.Name })
	out.Templates = serveAll(s, store.PinTemplate, c.Templates, func(t *mcp.ResourceTemplate) string { return t.URITemplate })
	p.updateGaugeLocked(upstream)
	wrote := len(p.writes[upstream]) > 0
	p.mu.Unlock()
	if len(newPins) > 0 {
		d, _ := json.Marshal(map[string]any{"upstream": upstream, "policy": policy, "items": clipList(newPins, 100), "count": len(newPins)})
		entries = append(entries, &store.AuditEntry{Time: s.now, Actor: "system", ActorKind: "system", Action: "pin.create", Target: "upstream:" + upstream, Outcome: "ok", Detail: d})
	}
	if p.o.Audit != nil {
		for _, e := range entries {
			p.o.Audit(context.Background(), e)
		}
	}
	if p.o.OnChange != nil {
		for _, c := range changes {
			p.o.OnChange(c)
		}
	}
	if wrote {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return out
}

func clipList(l []string, n int) []string {
	if len(l) > n {
		return append(l[:n:n], fmt.Sprintf("… %d more", len(l)-n))
	}
	return l
}

// serving is one Serve call's state; p.mu is held.
type serving struct {
	p                *Pinner
	upstream, policy string
	now              time.Time
	entries          *[]*store.AuditEntry
	changes          *[]Change
	newPins          *[]string
}

// serveAll decides each item of one kind.
func serveAll[T any](s *serving, kind string, items []*T, name func(*T) string) []*T {
	var out []*T
	for _, it := range items {
		if v := serveOne(s, kind, name(it), it); v != nil {
			out = append(out, v)
		}
	}
	return out
}

func serveOne[T any](s *serving, kind, name string, it *T) *T {
	p := s.p
	if name == "" {
		// Nothing to pin it by (and nothing a client could call).
		p.log.Warn("pin: an item without a name is withheld", "upstream", s.upstream, "kind", kind)
		return nil
	}
	raw, err := json.Marshal(it)
	var def []byte
	var hash string
	if err == nil {
		def, hash, err = Definition(kind, raw)
	}
	if err != nil {
		p.log.Error("pin: cannot fingerprint an item", "upstream", s.upstream, "kind", kind, "name", name, "err", err.Error())
		if s.policy == Block {
			return nil
		}
		return it
	}
	k := key{kind, name}
	ups := p.pins[s.upstream]
	if ups == nil {
		ups = map[key]*store.Pin{}
		p.pins[s.upstream] = ups
	}
	cur := ups[k]
	if cur == nil {
		np := &store.Pin{Upstream: s.upstream, Kind: kind, Name: name, Hash: hash, Definition: def, PinnedAt: s.now}
		ups[k] = np
		p.queueLocked(np, true)
		p.metrics.pinned.WithLabelValues(s.upstream, kind).Inc()
		*s.newPins = append(*s.newPins, kind+" "+name)
		return it
	}
	switch hash {
	case cur.Hash:
		if cur.OfferedHash != "" {
			// The upstream went back to the pinned definition.
			cp := *cur
			cp.OfferedHash, cp.OfferedDefinition, cp.OfferedAt, cp.Rejected = "", nil, time.Time{}, false
			ups[k] = &cp
			p.queueLocked(&cp, false)
		}
		return it
	case cur.OfferedHash:
		// A change already recorded (and audited).
	default:
		cp := *cur
		cp.OfferedHash, cp.OfferedDefinition, cp.OfferedAt, cp.Rejected = hash, def, s.now, false
		ups[k] = &cp
		p.queueLocked(&cp, false)
		p.metrics.changes.WithLabelValues(s.upstream, kind, s.policy).Inc()
		served := map[string]string{Hold: "pinned", Block: "withheld", Warn: "offered"}[s.policy]
		p.log.Warn("pinned definition changed by its upstream", "upstream", s.upstream, "kind", kind, "name", name, "policy", s.policy, "served", served,
			"pinned_hash", cur.Hash, "offered_hash", hash)
		d := Diff(cur.Definition, def)
		if len(d) > maxAuditDiff {
			d = d[:maxAuditDiff] + "\n… (cut; see mcpedge pins diff)\n"
		}
		detail, _ := json.Marshal(map[string]any{"upstream": s.upstream, "kind": kind, "name": name, "policy": s.policy, "served": served,
			"pinned_hash": cur.Hash, "offered_hash": hash, "diff": d})
		*s.changes = append(*s.changes, Change{Upstream: s.upstream, Kind: kind, Name: name, Policy: s.policy, Served: served, PinnedHash: cur.Hash, OfferedHash: hash})
		*s.entries = append(*s.entries, &store.AuditEntry{Time: s.now, Actor: "system", ActorKind: "system", Action: "pin.change",
			Target: Target(s.upstream, kind, name), Outcome: "ok", Detail: detail})
		cur = &cp
	}
	switch s.policy {
	case Warn:
		return it
	case Block:
		return nil
	}
	// Hold (and any policy this package does not know: the safe one).
	item, err := substitute(kind, raw, cur.Definition)
	var v T
	if err == nil {
		err = json.Unmarshal(item, &v)
	}
	if err != nil {
		p.log.Error("pin: the pinned definition does not decode; the item is withheld", "upstream", s.upstream, "kind", kind, "name", name, "err", err.Error())
		return nil
	}
	return &v
}

// Target is the audit target of a pinned item.
func Target(upstream, kind, name string) string {
	return "pin:" + upstream + "/" + kind + "/" + name
}

// queueLocked records that the store must get sp (created first if
// create); a later change of the same item replaces an earlier one not
// yet written, keeping its create.
func (p *Pinner) queueLocked(sp *store.Pin, create bool) {
	ws := p.writes[sp.Upstream]
	if ws == nil {
		ws = map[key]*write{}
		p.writes[sp.Upstream] = ws
	}
	k := key{sp.Kind, sp.Name}
	if old := ws[k]; old != nil && old.create {
		create = true
	}
	ws[k] = &write{pin: *sp, create: create}
}

func (p *Pinner) updateGaugeLocked(upstream string) {
	n := 0
	for _, sp := range p.pins[upstream] {
		if sp.Pending() {
			n++
		}
	}
	p.metrics.pending.WithLabelValues(upstream).Set(float64(n))
}

// Pending returns the number of changes awaiting an operator for upstream,
// as this process knows them.
func (p *Pinner) Pending(upstream string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, sp := range p.pins[upstream] {
		if sp.Pending() {
			n++
		}
	}
	return n
}
