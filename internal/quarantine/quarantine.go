// Package quarantine keeps the items the description guard withheld under
// descriptions = "quarantine" until an operator approves them
// (docs/guardrails.md, "Quarantine").
//
// When the poisoning detector flags a tool, prompt, resource or resource
// template of an upstream under quarantine, the gateway asks the [Book]
// whether that item, in that exact definition (its hash), was approved.
// If so it is served; if not it is withheld, and the first time that
// definition is seen it is recorded in the store (shared by every
// replica), audited ("guard.quarantine") and counted. An operator approves
// or rejects it (mcpedge guard approve|reject, or the admin API); the
// decision reaches every gateway within its poll, and the upstream's
// catalog is fetched and screened again ([Options.Changed]). A changed
// definition is quarantined again.
//
// Like tool pinning (internal/pin), the Book does no I/O on the path that
// screens a catalog: verdicts are loaded into memory and kept current by
// a poll, and new quarantines are written by a background writer that
// retries while the store is down.
package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/storeloop"
)

// DefaultPoll is how often [Book.Run] reloads the verdicts when
// Options.Poll is zero.
const DefaultPoll = 10 * time.Second

// Store is the part of the store the Book uses.
type Store interface {
	ListGuardVerdicts(ctx context.Context, upstream string) ([]store.GuardVerdict, error)
	QuarantineItem(ctx context.Context, v *store.GuardVerdict) (*store.GuardVerdict, error)
}

// Options configure [New].
type Options struct {
	// Store holds the verdicts. Required.
	Store Store
	// Audit records entries (audit.Logger.Record); nil: not audited.
	Audit func(context.Context, *store.AuditEntry)
	// Registerer gets the metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Log, if nil, is slog.Default().
	Log *slog.Logger
	// Changed is called when a decision about one of upstream's items
	// changed (an approval or a rejection, here or by another replica):
	// the gateway fetches that upstream's catalog again. It is called
	// with no lock of the Book held.
	Changed func(upstream string)
	// Poll is how often verdicts are reloaded; 0 means DefaultPoll.
	Poll time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

type key struct{ upstream, kind, name string }

// A Book holds the quarantined items. It is safe for concurrent use.
type Book struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	verdicts map[key]*store.GuardVerdict
	// flagged are the definitions audited as flagged (Flagged), by item:
	// the hash and rules last audited.
	flagged map[key]string
	writes  map[key]*store.GuardVerdict // quarantines not yet stored
	wake    chan struct{}

	pending     *prometheus.GaugeVec
	quarantined *prometheus.CounterVec
	storeErrors prometheus.Counter
}

// New returns a Book; call [Book.Load] and then [Book.Run].
func New(o Options) *Book {
	b := &Book{o: o, log: o.Log, verdicts: map[key]*store.GuardVerdict{}, writes: map[key]*store.GuardVerdict{}, wake: make(chan struct{}, 1)}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.o.Poll <= 0 {
		b.o.Poll = DefaultPoll
	}
	if b.o.Now == nil {
		b.o.Now = time.Now
	}
	b.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "mcpedge", Subsystem: "guard", Name: "quarantine_pending",
		Help: "Items the description guard quarantined that await an operator, by upstream."}, []string{"upstream"})
	b.quarantined = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "guard", Name: "quarantined_total",
		Help: "Definitions quarantined when first seen (once per definition), by upstream and kind."}, []string{"upstream", "kind"})
	b.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mcpedge", Subsystem: "guard", Name: "quarantine_store_errors_total",
		Help: "Failed reads and writes of quarantine verdicts (retried)."})
	if r := o.Registerer; r != nil {
		r.MustRegister(b.pending, b.quarantined, b.storeErrors)
	}
	return b
}

// An Item is a flagged item the gateway asks about.
type Item struct {
	Upstream, Kind, Name string
	// Hash is the hex SHA-256 of its definition as offered.
	Hash         string
	Rules        []string
	RulesVersion string
	// Text is what the detector judged.
	Text string
	// Findings say why each rule fired.
	Findings []store.GuardFinding
}

// Released reports whether it was approved in this definition: true
// means serve it. Otherwise it is withheld; the first time this
// definition is seen, it is recorded (in the background), audited and
// counted. It does no I/O.
func (b *Book) Released(ctx context.Context, it Item) bool {
	k := key{it.Upstream, it.Kind, it.Name}
	b.mu.Lock()
	cur := b.verdicts[k]
	if cur != nil && cur.Hash == it.Hash {
		approved := cur.State == store.VerdictApproved
		b.mu.Unlock()
		return approved
	}
	v := &store.GuardVerdict{Upstream: it.Upstream, Kind: it.Kind, Name: it.Name, Hash: it.Hash, Rules: slices.Clone(it.Rules),
		RulesVersion: it.RulesVersion, Text: it.Text, Findings: slices.Clone(it.Findings), State: store.VerdictQuarantined, SeenAt: b.o.Now().UTC()}
	b.verdicts[k] = v
	b.writes[k] = v
	b.updateGaugeLocked(it.Upstream)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	b.quarantined.WithLabelValues(it.Upstream, it.Kind).Inc()
	if b.o.Audit != nil {
		d, _ := json.Marshal(map[string]any{"hash": it.Hash, "rules": it.Rules, "rules_version": it.RulesVersion, "findings": it.Findings})
		b.o.Audit(ctx, &store.AuditEntry{Time: v.SeenAt, Actor: "system", ActorKind: "system", Action: "guard.quarantine",
			Target: Target(it.Upstream, it.Kind, it.Name), Outcome: "denied", Detail: d})
	}
	b.log.Warn("guard: quarantined; approve with mcpedge guard approve", "upstream", it.Upstream, "kind", it.Kind, "name", it.Name, "rules", it.Rules, "hash", it.Hash)
	return false
}

// Flagged records that it was flagged and served with a warning
// (descriptions = "flag"): audited as "guard.flag" (outcome "ok", with
// the rules and their findings) the first time this process sees that
// definition flagged by those rules, and not again while it stays so.
// Flagged items are not stored and await no decision. It does no I/O
// besides the audit record.
func (b *Book) Flagged(ctx context.Context, it Item) { b.note(ctx, "guard.flag", "ok", it) }

// Blocked records that a server-to-client request (Kind "request", Name
// its method) was refused because it was flagged (descriptions =
// "quarantine"): audited as "guard.block" (outcome "denied"), once per
// text and rules, like [Book.Flagged].
func (b *Book) Blocked(ctx context.Context, it Item) { b.note(ctx, "guard.block", "denied", it) }

func (b *Book) note(ctx context.Context, action, outcome string, it Item) {
	k := key{it.Upstream, it.Kind + "\x00" + action, it.Name}
	mark := it.Hash + "\x00" + strings.Join(it.Rules, ",")
	b.mu.Lock()
	if b.flagged == nil {
		b.flagged = map[key]string{}
	}
	seen := b.flagged[k] == mark
	b.flagged[k] = mark
	b.mu.Unlock()
	if seen || b.o.Audit == nil {
		return
	}
	d, _ := json.Marshal(map[string]any{"hash": it.Hash, "rules": it.Rules, "rules_version": it.RulesVersion, "findings": it.Findings})
	b.o.Audit(ctx, &store.AuditEntry{Time: b.o.Now().UTC(), Actor: "system", ActorKind: "system", Action: action,
		Target: Target(it.Upstream, it.Kind, it.Name), Outcome: outcome, Detail: d})
}

// Target is the audit target of an item: "guard:<upstream>/<kind>/<name>".
func Target(upstream, kind, name string) string {
	return "guard:" + upstream + "/" + kind + "/" + name
}

// Pending returns how many of upstream's items await an operator.
func (b *Book) Pending(upstream string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pendingLocked(upstream)
}

func (b *Book) pendingLocked(upstream string) int {
	n := 0
	for k, v := range b.verdicts {
		if k.upstream == upstream && v.Pending() {
			n++
		}
	}
	return n
}

func (b *Book) updateGaugeLocked(upstream string) {
	b.pending.WithLabelValues(upstream).Set(float64(b.pendingLocked(upstream)))
}

// Load reads every verdict from the store. Quarantines not yet stored win
// over what it reads. Upstreams with a changed decision are passed to
// Options.Changed.
func (b *Book) Load(ctx context.Context) error {
	all, err := b.o.Store.ListGuardVerdicts(ctx, "")
	if err != nil {
		b.storeErrors.Inc()
		return fmt.Errorf("loading guard verdicts: %w", err)
	}
	fresh := map[key]*store.GuardVerdict{}
	for i := range all {
		v := &all[i]
		fresh[key{v.Upstream, v.Kind, v.Name}] = v
	}
	b.mu.Lock()
	changed := map[string]bool{}
	for k, old := range b.verdicts {
		if b.writes[k] != nil {
			continue
		}
		if nw := fresh[k]; nw == nil || nw.Hash != old.Hash || nw.State != old.State {
			changed[k.upstream] = true
		}
	}
	for k, nw := range fresh {
		if b.verdicts[k] == nil && nw.State != store.VerdictQuarantined {
			changed[k.upstream] = true
		}
	}
	for k, w := range b.writes {
		fresh[k] = w
	}
	b.verdicts = fresh
	ups := map[string]bool{}
	for k := range fresh {
		ups[k.upstream] = true
	}
	for up := range changed {
		ups[up] = true
	}
	for up := range ups {
		b.updateGaugeLocked(up)
	}
	b.mu.Unlock()
	if b.o.Changed != nil {
		for _, up := range slices.Sorted(maps.Keys(changed)) {
			b.o.Changed(up)
		}
	}
	return nil
}

// Refresh reloads the verdicts now (after a decision made in this
// process).
func (b *Book) Refresh(ctx context.Context) error { return b.Load(ctx) }

// Run writes new quarantines and reloads the verdicts every Options.Poll
// until ctx is done; a failed write is logged, counted and retried.
func (b *Book) Run(ctx context.Context) {
	storeloop.Run(ctx, storeloop.Loop{
		Poll: b.o.Poll, Wake: b.wake, Load: b.Load, Flush: b.Flush,
		LoadFailed: func(err error) {
			b.log.Warn("guard verdicts not reloaded; those in memory stay in force", "err", err.Error())
		},
		FlushFailed: func(err error, retryIn time.Duration) {
			b.log.Error("guard verdicts not stored; retrying", "err", err.Error(), "retry_in", retryIn.String())
		},
	})
}

// Flush writes the quarantines not yet stored.
func (b *Book) Flush(ctx context.Context) error {
	b.mu.Lock()
	todo := slices.Collect(maps.Values(b.writes))
	b.mu.Unlock()
	var errs []error
	changed := map[string]bool{}
	for _, w := range todo {
		stored, err := b.o.Store.QuarantineItem(ctx, w)
		if err != nil {
			b.storeErrors.Inc()
			errs = append(errs, err)
			continue
		}
		k := key{w.Upstream, w.Kind, w.Name}
		b.mu.Lock()
		if b.writes[k] == w {
			delete(b.writes, k)
			if stored.State != w.State {
				// Another replica recorded it and an operator decided.
				changed[w.Upstream] = true
			}
			b.verdicts[k] = stored
			b.updateGaugeLocked(w.Upstream)
		}
		b.mu.Unlock()
	}
	if b.o.Changed != nil {
		for _, up := range slices.Sorted(maps.Keys(changed)) {
			b.o.Changed(up)
		}
	}
	return errors.Join(errs...)
}
