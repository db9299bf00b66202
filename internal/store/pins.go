package store

import (
	"context"
	"time"
)

// Kinds of pinned items (Pin.Kind).
const (
	PinTool     = "tool"
	PinPrompt   = "prompt"
	PinTemplate = "template"
)

// Pin is the definition of one tool, prompt or resource template of an
// upstream that the gateway pinned (tool pinning, internal/pin): the one
// it first saw or an operator last approved, and the different definition
// the upstream offers now, if any. Definitions are canonical JSON of what
// a model reads (internal/pin decides what that is); the store keeps them
// as opaque bytes.
type Pin struct {
	Upstream string `json:"upstream"`
	Kind     string `json:"kind"` // PinTool, PinPrompt or PinTemplate
	// Name is the upstream's own name of the item; a template's URI
	// template.
	Name       string    `json:"name"`
	Hash       string    `json:"hash"` // of Definition, by the caller
	Definition []byte    `json:"definition"`
	PinnedAt   time.Time `json:"pinned_at"`
	// OfferedHash is the hash of the changed definition the upstream
	// offers ("": none), OfferedDefinition that definition and OfferedAt
	// when it was first seen.
	OfferedHash       string    `json:"offered_hash,omitempty"`
	OfferedDefinition []byte    `json:"offered_definition,omitempty"`
	OfferedAt         time.Time `json:"offered_at,omitzero"`
	// Rejected says that an operator rejected the offered definition: it
	// is no longer pending, and stays unserved.
	Rejected bool `json:"rejected,omitempty"`
}

// Pending reports whether the pin has an offered change awaiting an
// operator.
func (p *Pin) Pending() bool { return p.OfferedHash != "" && !p.Rejected }

// Pins stores pinned definitions, shared by every replica.
type Pins interface {
	// ListPins returns the pins of an upstream ("": of every upstream),
	// by upstream, kind and name.
	ListPins(ctx context.Context, upstream string) ([]Pin, error)
	GetPin(ctx context.Context, upstream, kind, name string) (*Pin, error)
	// CreatePin stores a first-seen definition and fills PinnedAt (the
	// offer fields are ignored). ErrConflict when the item is pinned
	// already (by another replica, say): the first pin stays.
	CreatePin(ctx context.Context, p *Pin) error
	// OfferPin records that the upstream now offers def (whose hash is
	// hash) for a pinned item and returns the pin after the change: when
	// hash is the pinned hash, any offer is cleared (the upstream went
	// back); when it is the offered hash, nothing changes (OfferedAt and
	// Rejected stay); otherwise the offer is replaced, OfferedAt set to
	// at and Rejected cleared. ErrNotFound when the item is not pinned.
	OfferPin(ctx context.Context, upstream, kind, name, hash string, def []byte, at time.Time) (*Pin, error)
	// ApprovePin makes the offered definition the pinned one (PinnedAt =
	// at) and clears the offer. hash, if not "", must be the offered
	// hash (what the operator reviewed), else ErrConflict. ErrNotFound
	// when the item is not pinned or nothing is offered.
	ApprovePin(ctx context.Context, upstream, kind, name, hash string, at time.Time) (*Pin, error)
	// RejectPin marks the offer rejected, with the same rules for hash
	// and ErrNotFound as ApprovePin.
	RejectPin(ctx context.Context, upstream, kind, name, hash string) (*Pin, error)
}
