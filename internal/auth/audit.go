package auth

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Audit outcomes.
const (
	outcomeOK     = "ok"
	outcomeDenied = "denied"
)

// who a decision is about, for the audit entry.
type who struct {
	id, kind, tenant string
}

func keyWho(k *store.APIKey) who { return who{id: k.ID, kind: principal.KindKey, tenant: k.TenantID} }

func userWho(u *store.User) who { return who{id: u.ID, kind: principal.KindUser, tenant: u.TenantID} }

// reject audits a refused credential and returns the refusal as the
// client sees it.
func (s *Service) reject(ctx context.Context, w who, clientIP string, err error, detail map[string]any) error {
	var f *failure
	if errors.As(err, &f) {
		err = f
	}
	if detail == nil {
		detail = map[string]any{}
	}
	if _, ok := detail["reason"]; !ok {
		detail["reason"] = Reason(err)
	}
	s.emit(ctx, &store.AuditEntry{
		TenantID:  w.tenant,
		Actor:     w.id,
		ActorKind: orAnonymous(w.kind),
		Action:    "auth.reject",
		Outcome:   outcomeDenied,
		ClientIP:  clientIP,
	}, detail)
	return err
}

func orAnonymous(kind string) string {
	if kind == "" {
		return principal.KindAnonymous
	}
	return kind
}

// setActor fills the actor of a management action from the principal in
// ctx ("system" when there is none: bootstrap, the CLI).
func (s *Service) setActor(ctx context.Context, e *store.AuditEntry) {
	if p := principal.From(ctx); p != nil {
		e.Actor, e.ActorKind = p.ID, p.Kind
		return
	}
	e.Actor, e.ActorKind = "system", "system"
}

// emit completes e and hands it to the audit callback. detail must never
// contain a secret.
func (s *Service) emit(ctx context.Context, e *store.AuditEntry, detail map[string]any) {
	if s.audit == nil {
		return
	}
	e.Time = s.now().UTC()
	if len(detail) > 0 {
		if b, err := json.Marshal(detail); err == nil {
			e.Detail = b
		}
	}
	s.audit(ctx, e)
}
