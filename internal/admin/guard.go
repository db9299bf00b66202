package admin

import (
	"context"
	"net/http"

	"github.com/mcpedge/mcpedge/internal/quarantine"
	"github.com/mcpedge/mcpedge/internal/store"
)

// QuarantineDecision names the quarantined item an operator approves or
// rejects, and the hash they reviewed ("": whatever is quarantined now).
type QuarantineDecision struct {
	Upstream string `json:"upstream"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Hash     string `json:"hash,omitempty"`
}

// ListQuarantine lists the items the description guard quarantined, of
// upstream ("": every upstream), only those in state ("": every state)
// (operator admins; see docs/guardrails.md, "Quarantine").
func (o *Ops) ListQuarantine(ctx context.Context, upstream, state string) (_ []store.GuardVerdict, err error) {
	c := o.beginRead(ctx, "guard.list")
	defer c.end(&err)
	if err := c.needOperator(read); err != nil {
		return nil, err
	}
	switch state {
	case "", store.VerdictQuarantined, store.VerdictApproved, store.VerdictRejected:
	default:
		return nil, invalid("state must be %s, %s or %s, got %q", store.VerdictQuarantined, store.VerdictApproved, store.VerdictRejected, clip(state))
	}
	vs, err := o.st.ListGuardVerdicts(ctx, upstream)
	if err != nil {
		return nil, err
	}
	out := []store.GuardVerdict{}
	for _, v := range vs {
		if state == "" || v.State == state {
			out = append(out, v)
		}
	}
	return out, nil
}

// GetQuarantined returns one quarantined item with the text that was
// judged (operator admins).
func (o *Ops) GetQuarantined(ctx context.Context, upstream, kind, name string) (_ *store.GuardVerdict, err error) {
	c := o.beginRead(ctx, "guard.get")
	defer c.end(&err)
	c.target = quarantine.Target(upstream, kind, clip(name))
	if err := c.needOperator(read); err != nil {
		return nil, err
	}
	return o.st.GetGuardVerdict(ctx, upstream, kind, name)
}

// ApproveQuarantined releases a quarantined item in the definition that
// was reviewed (operator admins), audited as "guard.approve": gateways
// sharing the store serve it within their poll, this process at once
// (OpsOptions.QuarantineChanged).
func (o *Ops) ApproveQuarantined(ctx context.Context, d QuarantineDecision) (*store.GuardVerdict, error) {
	return o.decideQuarantined(ctx, "guard.approve", store.VerdictApproved, d)
}

// RejectQuarantined confirms a quarantine (operator admins), audited as
// "guard.reject": the item stays withheld and is no longer pending.
func (o *Ops) RejectQuarantined(ctx context.Context, d QuarantineDecision) (*store.GuardVerdict, error) {
	return o.decideQuarantined(ctx, "guard.reject", store.VerdictRejected, d)
}

func (o *Ops) decideQuarantined(ctx context.Context, action, state string, d QuarantineDecision) (_ *store.GuardVerdict, err error) {
	c := o.begin(ctx, action)
	defer c.end(&err)
	c.target = quarantine.Target(clip(d.Upstream), clip(d.Kind), clip(d.Name))
	if err := c.needOperator(write); err != nil {
		return nil, err
	}
	if d.Upstream == "" || d.Kind == "" || d.Name == "" {
		return nil, invalid("upstream, kind and name are required")
	}
	v, err := o.st.DecideGuardVerdict(ctx, d.Upstream, d.Kind, d.Name, d.Hash, state, o.now())
	if err != nil {
		return nil, err
	}
	c.detail["hash"] = v.Hash
	c.detail["rules"] = v.Rules
	if o.quarantineChanged != nil {
		o.quarantineChanged(ctx)
	}
	return v, nil
}

func (h *handler) listQuarantine(w http.ResponseWriter, r *http.Request) error {
	vs, err := h.ops.ListQuarantine(r.Context(), r.URL.Query().Get("upstream"), r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"quarantine": vs})
	return nil
}

func (h *handler) getQuarantined(w http.ResponseWriter, r *http.Request) error {
	v, err := h.ops.GetQuarantined(r.Context(), r.PathValue("upstream"), r.PathValue("kind"), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *handler) approveQuarantined(w http.ResponseWriter, r *http.Request) error {
	return h.decideQuarantined(w, r, h.ops.ApproveQuarantined)
}

func (h *handler) rejectQuarantined(w http.ResponseWriter, r *http.Request) error {
	return h.decideQuarantined(w, r, h.ops.RejectQuarantined)
}

func (h *handler) decideQuarantined(w http.ResponseWriter, r *http.Request, do func(context.Context, QuarantineDecision) (*store.GuardVerdict, error)) error {
	var d QuarantineDecision
	if err := h.decode(w, r, &d); err != nil {
		return err
	}
	v, err := do(r.Context(), d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
