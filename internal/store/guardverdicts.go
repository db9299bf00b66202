package store

import (
	"context"
	"time"
)

// States of a quarantined item (GuardVerdict.State).
const (
	// VerdictQuarantined: flagged by the description guard under
	// descriptions = "quarantine", withheld, awaiting an operator.
	VerdictQuarantined = "quarantined"
	// VerdictApproved: an operator released it; it is served (this
	// definition only: a changed one is judged again).
	VerdictApproved = "approved"
	// VerdictRejected: an operator confirmed the quarantine; it stays
	// withheld and is no longer pending.
	VerdictRejected = "rejected"
)

// A GuardVerdict is a tool, prompt, resource or resource template the
// description guard quarantined (internal/quarantine, docs/guardrails.md,
// "Quarantine"), and what an operator decided about it. There is one per
// item of an upstream: a changed definition replaces the verdict and is
// quarantined again.
type GuardVerdict struct {
	Upstream string `json:"upstream"`
	// Kind is PinTool, PinPrompt, PinTemplate or "resource".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the item's definition as the upstream
	// offered it (internal/pin.Definition): a decision applies to it only.
	Hash string `json:"hash"`
	// Rules are the ids of the rules that fired, RulesVersion the set
	// that judged it.
	Rules        []string `json:"rules"`
	RulesVersion string   `json:"rules_version"`
	// Text is what the detector judged (clipped), for the operator.
	Text string `json:"text"`
	// Findings say why each rule fired (migration 0012; empty for items
	// quarantined before).
	Findings  []GuardFinding `json:"findings,omitempty"`
	State     string         `json:"state"`
	SeenAt    time.Time      `json:"seen_at"`
	DecidedAt time.Time      `json:"decided_at,omitzero"`
}

// A GuardFinding is one rule that fired on a quarantined item: its id,
// its explanation (for the shadowing check, which other upstream's tool
// the item takes after) and the text it matched.
type GuardFinding struct {
	Rule    string `json:"rule"`
	Explain string `json:"explain"`
	Match   string `json:"match,omitempty"`
}

// Pending reports whether the verdict awaits an operator.
func (v *GuardVerdict) Pending() bool { return v.State == VerdictQuarantined }

// KindResource is the GuardVerdict kind of a resource.
const KindResource = "resource"

// GuardVerdicts stores quarantined items and their decisions, shared by
// every replica.
type GuardVerdicts interface {
	// ListGuardVerdicts returns the verdicts of an upstream ("": of every
	// upstream), by upstream, kind and name.
	ListGuardVerdicts(ctx context.Context, upstream string) ([]GuardVerdict, error)
	GetGuardVerdict(ctx context.Context, upstream, kind, name string) (*GuardVerdict, error)
	// QuarantineItem records that v's item (v.Hash) was quarantined and
	// returns the verdict as stored: a new item, or one whose hash
	// differs from the stored one, is stored with State
	// VerdictQuarantined and SeenAt = v.SeenAt (and any decision
	// cleared); the same hash leaves the stored verdict, and its
	// decision, as they are.
	QuarantineItem(ctx context.Context, v *GuardVerdict) (*GuardVerdict, error)
	// DecideGuardVerdict sets an item's state to VerdictApproved or
	// VerdictRejected (DecidedAt = at). hash, if not "", must be the
	// stored hash (what the operator reviewed), else ErrConflict.
	// ErrNotFound when the item was never quarantined.
	DecideGuardVerdict(ctx context.Context, upstream, kind, name, hash, state string, at time.Time) (*GuardVerdict, error)
}
