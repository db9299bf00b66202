package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/mcpedge/mcpedge/internal/pin"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Pin states (PinInfo.State).
const (
	PinStatePinned   = "pinned"   // nothing offered
	PinStatePending  = "pending"  // a change awaits approval
	PinStateRejected = "rejected" // the offered change was rejected
)

// PinInfo is a pinned tool, prompt or resource template as the admin API
// shows it (see docs/guardrails.md, "Tool pinning").
type PinInfo struct {
	Upstream   string          `json:"upstream"`
	Kind       string          `json:"kind"`
	Name       string          `json:"name"`
	State      string          `json:"state"`
	Hash       string          `json:"hash"`
	PinnedAt   time.Time       `json:"pinned_at"`
	Definition json.RawMessage `json:"definition,omitempty"`
	// The offered change, if any.
	OfferedHash       string          `json:"offered_hash,omitempty"`
	OfferedAt         time.Time       `json:"offered_at,omitzero"`
	OfferedDefinition json.RawMessage `json:"offered_definition,omitempty"`
	// Diff is a unified diff of the pretty-printed definitions (pinned
	// → offered); only in single-pin answers.
	Diff string `json:"diff,omitempty"`
}

// PinDecision names the pin an operator approves or rejects, and the
// offered hash they reviewed ("": whatever is offered now).
type PinDecision struct {
	Upstream string `json:"upstream"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Hash     string `json:"hash,omitempty"`
}

func pinInfo(p store.Pin, full bool) PinInfo {
	pi := PinInfo{Upstream: p.Upstream, Kind: p.Kind, Name: p.Name, State: PinStatePinned, Hash: p.Hash, PinnedAt: p.PinnedAt,
		OfferedHash: p.OfferedHash, OfferedAt: p.OfferedAt}
	switch {
	case p.Rejected:
		pi.State = PinStateRejected
	case p.OfferedHash != "":
		pi.State = PinStatePending
	}
	if full {
		pi.Definition = json.RawMessage(p.Definition)
		if p.OfferedHash != "" {
			pi.OfferedDefinition = json.RawMessage(p.OfferedDefinition)
			pi.Diff = pin.Diff(p.Definition, p.OfferedDefinition)
		}
	}
	return pi
}

// ListPins lists the pins of upstream ("": every upstream), only those in
// state ("": every state), without their definitions (operator admins;
// pins are the whole gateway's).
func (o *Ops) ListPins(ctx context.Context, upstream, state string) (_ []PinInfo, err error) {
	c := o.beginRead(ctx, "pin.list")
	defer c.end(&err)
	if err := c.needOperator(read); err != nil {
		return nil, err
	}
	switch state {
	case "", PinStatePinned, PinStatePending, PinStateRejected:
	default:
		return nil, invalid("state must be %s, %s or %s, got %q", PinStatePinned, PinStatePending, PinStateRejected, clip(state))
	}
	ps, err := o.st.ListPins(ctx, upstream)
	if err != nil {
		return nil, err
	}
	out := []PinInfo{}
	for _, p := range ps {
		if pi := pinInfo(p, false); state == "" || pi.State == state {
			out = append(out, pi)
		}
	}
	return out, nil
}

// GetPin returns one pin with its definitions and the diff of the offered
// change (operator admins).
func (o *Ops) GetPin(ctx context.Context, upstream, kind, name string) (_ *PinInfo, err error) {
	c := o.beginRead(ctx, "pin.get")
	defer c.end(&err)
	c.target = pin.Target(upstream, kind, clip(name))
	if err := c.needOperator(read); err != nil {
		return nil, err
	}
	p, err := o.st.GetPin(ctx, upstream, kind, name)
	if err != nil {
		return nil, err
	}
	pi := pinInfo(*p, true)
	return &pi, nil
}

// ApprovePin makes the offered change the pinned definition (operator
// admins), audited as "pin.approve". The gateways sharing the store serve
// it within their pin poll; this process's at once (OpsOptions.PinsChanged).
func (o *Ops) ApprovePin(ctx context.Context, d PinDecision) (_ *PinInfo, err error) {
	return o.decidePin(ctx, "pin.approve", d, func() (*store.Pin, error) {
		return o.st.ApprovePin(ctx, d.Upstream, d.Kind, d.Name, d.Hash, o.now())
	})
}

// RejectPin rejects the offered change (operator admins), audited as
// "pin.reject": the pinned definition stays in force, and the same change
// offered again stays rejected.
func (o *Ops) RejectPin(ctx context.Context, d PinDecision) (_ *PinInfo, err error) {
	return o.decidePin(ctx, "pin.reject", d, func() (*store.Pin, error) {
		return o.st.RejectPin(ctx, d.Upstream, d.Kind, d.Name, d.Hash)
	})
}

func (o *Ops) decidePin(ctx context.Context, action string, d PinDecision, do func() (*store.Pin, error)) (_ *PinInfo, err error) {
	c := o.begin(ctx, action)
	defer c.end(&err)
	c.target = pin.Target(clip(d.Upstream), clip(d.Kind), clip(d.Name))
	if err := c.needOperator(write); err != nil {
		return nil, err
	}
	if d.Upstream == "" || d.Kind == "" || d.Name == "" {
		return nil, invalid("upstream, kind and name are required")
	}
	p, err := do()
	if err != nil {
		return nil, err
	}
	c.detail["hash"] = p.Hash
	if action == "pin.reject" {
		c.detail["rejected_hash"] = p.OfferedHash
	}
	if o.pinsChanged != nil {
		o.pinsChanged(ctx)
	}
	pi := pinInfo(*p, false)
	return &pi, nil
}

func (h *handler) listPins(w http.ResponseWriter, r *http.Request) error {
	ps, err := h.ops.ListPins(r.Context(), r.URL.Query().Get("upstream"), r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"pins": ps})
	return nil
}

func (h *handler) getPin(w http.ResponseWriter, r *http.Request) error {
	p, err := h.ops.GetPin(r.Context(), r.PathValue("upstream"), r.PathValue("kind"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (h *handler) approvePin(w http.ResponseWriter, r *http.Request) error {
	return h.decidePin(w, r, h.ops.ApprovePin)
}

func (h *handler) rejectPin(w http.ResponseWriter, r *http.Request) error {
	return h.decidePin(w, r, h.ops.RejectPin)
}

func (h *handler) decidePin(w http.ResponseWriter, r *http.Request, do func(context.Context, PinDecision) (*PinInfo, error)) error {
	var d PinDecision
	if err := h.decode(w, r, &d); err != nil {
		return err
	}
	p, err := do(r.Context(), d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
