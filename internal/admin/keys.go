package admin

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// DefaultKeyName and DefaultKeyRole apply when a new key names neither.
const (
	DefaultKeyName = "key"
	DefaultKeyRole = principal.RoleMember
)

// KeySpec is a new API key (POST /api/tenants/{tenant}/keys).
type KeySpec struct {
	Name   string   `json:"name,omitempty"`
	Role   string   `json:"role,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	// ExpiresIn is a lifetime such as "720h" or "30d"; "" or "0" never
	// expires.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// NewKey is a key as created or rotated, with its secret: the only time
// the secret is ever shown.
type NewKey struct {
	Key    *store.APIKey `json:"key"`
	Secret string        `json:"secret"`
	// Replaces is the id of the rotated key (rotation only).
	Replaces string `json:"replaces,omitempty"`
}

// ParseLifetime parses a key lifetime: a Go duration ("720h", "90m") or
// a whole number of days ("30d"). "" and "0" mean no expiry.
func ParseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(MaxKeyLifetime/(24*time.Hour)) {
			return 0, invalid("expiry %q is invalid: give a duration such as \"720h\" or a number of days such as \"30d\"", clip(s))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, invalid("expiry %q is invalid: give a duration such as \"720h\" or a number of days such as \"30d\"", clip(s))
		}
	}
	switch {
	case d < 0:
		return 0, invalid("expiry %q is negative", clip(s))
	case d > 0 && d < time.Minute:
		return 0, invalid("expiry %q is shorter than a minute", clip(s))
	case d > MaxKeyLifetime:
		return 0, invalid("expiry %q is longer than ten years", clip(s))
	}
	return d, nil
}

// ListKeys lists a tenant's keys, newest first, without secrets or hashes
// (the store never had the secrets).
func (o *Ops) ListKeys(ctx context.Context, tenantRef string) (_ []store.APIKey, err error) {
	c := o.beginRead(ctx, "key.list")
	defer c.end(&err)
	t, err := c.tenant(tenantRef, read)
	if err != nil {
		return nil, err
	}
	ks, err := o.st.ListKeys(ctx, t.ID)
	for i := range ks {
		normKey(&ks[i])
	}
	return ks, err
}

// CreateKey creates an API key and returns it with its secret.
func (o *Ops) CreateKey(ctx context.Context, tenantRef string, s KeySpec) (_ *NewKey, err error) {
	c := o.begin(ctx, "key.create")
	c.credsAudit = true
	defer c.end(&err)
	t, err := c.tenant(tenantRef, write)
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = DefaultKeyName
	}
	if s.Role == "" {
		s.Role = DefaultKeyRole
	}
	c.target = "key:" + clip(s.Name)
	if err := validName("key", s.Name); err != nil {
		return nil, err
	}
	if err := validRole(s.Role); err != nil {
		return nil, err
	}
	if err := validKeyScopes(s.Scopes); err != nil {
		return nil, err
	}
	s.Scopes = dedupe(s.Scopes)
	life, err := ParseLifetime(s.ExpiresIn)
	if err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["role"], c.detail["scopes"] = s.Name, s.Role, s.Scopes
	if err := c.mayGrant(s.Role, s.Scopes); err != nil {
		return nil, err
	}
	k := &store.APIKey{TenantID: t.ID, Name: s.Name, Role: s.Role, Scopes: s.Scopes}
	secret, err := o.creds.CreateKey(ctx, k, life)
	if err != nil {
		return nil, storeErr(err, "key")
	}
	c.target = "key:" + k.ID
	c.detail["prefix"] = k.Prefix
	if !k.ExpiresAt.IsZero() {
		c.detail["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	normKey(k)
	o.publish(ctx, events.KeyCreated, k.TenantID, keyEventData(k, c))
	return &NewKey{Key: k, Secret: secret}, nil
}

// RevokeKey revokes a key, by id or display prefix, at once and on every
// replica. Revoking twice is not an error. tenantRef "" searches every
// tenant (operator admins; for others it means their own tenant).
func (o *Ops) RevokeKey(ctx context.Context, tenantRef, keyRef string) (_ *store.APIKey, err error) {
	c := o.begin(ctx, "key.revoke")
	c.credsAudit = true
	defer c.end(&err)
	k, err := o.lookupKey(c, tenantRef, keyRef)
	if err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["prefix"], c.detail["role"] = k.Name, k.Prefix, k.Role
	if principal.RoleRank(k.Role) > principal.RoleRank(c.p.Role) {
		return nil, c.forbid("you can not revoke a key whose role (%s) is above your own (%s)", k.Role, c.p.Role)
	}
	if err := o.creds.RevokeKey(ctx, k.TenantID, k.ID); err != nil {
		return nil, storeErr(err, "key \""+clip(keyRef)+"\"")
	}
	nk, err := o.st.GetKey(ctx, k.TenantID, k.ID)
	if err != nil {
		return nil, err
	}
	normKey(nk)
	if k.RevokedAt.IsZero() { // the first revocation only
		o.publish(ctx, events.KeyRevoked, nk.TenantID, keyEventData(nk, c))
	}
	return nk, nil
}

// keyEventData describes a key in an event: never its secret or hash.
func keyEventData(k *store.APIKey, c *call) map[string]any {
	return map[string]any{"key_id": k.ID, "name": k.Name, "prefix": k.Prefix, "role": k.Role, "scopes": k.Scopes, "actor": c.p.ID, "actor_kind": c.p.Kind}
}

// publish hands an event to OpsOptions.Events; a failure is logged, never
// the caller's (the change is made).
func (o *Ops) publish(ctx context.Context, typ, tenantID string, data map[string]any) {
	if o.events == nil {
		return
	}
	if err := o.events.Publish(context.WithoutCancel(ctx), events.Event{Type: typ, TenantID: tenantID, Time: o.now(), Data: data}); err != nil {
		o.log.Warn("publishing an event failed; its webhooks are not sent", "type", typ, "error", err)
	}
}

// RotateKey replaces a key by a new one with the same name, role and
// scopes; the old one keeps working for [auth] key_rotate_overlap. The
// caller must be allowed to create such a key.
func (o *Ops) RotateKey(ctx context.Context, tenantRef, keyRef string) (_ *NewKey, err error) {
	c := o.begin(ctx, "key.rotate")
	c.credsAudit = true
	defer c.end(&err)
	k, err := o.lookupKey(c, tenantRef, keyRef)
	if err != nil {
		return nil, err
	}
	c.detail["name"], c.detail["prefix"], c.detail["role"] = k.Name, k.Prefix, k.Role
	if err := c.mayGrant(k.Role, k.Scopes); err != nil {
		return nil, err
	}
	switch {
	case !k.RevokedAt.IsZero():
		return nil, errorf(CodeConflict, "key %s is revoked; create a new key instead", k.Prefix)
	case k.RotatedTo != "":
		return nil, errorf(CodeConflict, "key %s was already rotated (its successor is %s); rotate that one", k.Prefix, k.RotatedTo)
	case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(o.now()):
		return nil, errorf(CodeConflict, "key %s has expired; create a new key instead", k.Prefix)
	}
	secret, next, err := o.creds.RotateKey(ctx, k.TenantID, k.ID)
	if err != nil {
		return nil, storeErr(err, "key \""+clip(keyRef)+"\"")
	}
	c.detail["new_key"], c.detail["new_prefix"] = next.ID, next.Prefix
	normKey(next)
	data := keyEventData(next, c)
	data["replaces"] = k.ID
	o.publish(ctx, events.KeyCreated, next.TenantID, data)
	return &NewKey{Key: next, Secret: secret, Replaces: k.ID}, nil
}

// lookupKey finds a key by id or prefix in the tenant named by tenantRef
// and checks the caller's right to change it. A key that exists, but in
// another tenant than the caller may reach, is audited as authz.denied
// and answered as not found.
func (o *Ops) lookupKey(c *call, tenantRef, keyRef string) (*store.APIKey, error) {
	if err := c.authenticated(); err != nil {
		return nil, err
	}
	c.target = "key:" + clip(keyRef)
	tenantID := ""
	switch {
	case tenantRef != "":
		t, err := c.tenant(tenantRef, write)
		if err != nil {
			return nil, err
		}
		tenantID = t.ID
	case !operatorAdmin(c.p):
		tenantID = c.p.TenantID
	}
	k, err := o.findKey(c.ctx, tenantID, keyRef)
	if errors.Is(err, store.ErrNotFound) && tenantID != "" && !operatorAdmin(c.p) {
		if _, oerr := o.findKey(c.ctx, "", keyRef); oerr == nil {
			return nil, c.denyElsewhere("key %q not found", clip(keyRef))
		}
	}
	if err != nil {
		return nil, storeErr(err, "key \""+clip(keyRef)+"\"")
	}
	c.target = "key:" + k.ID
	if tenantRef == "" {
		if _, err := c.tenant(k.TenantID, write); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// findKey looks a key up by id, then by display prefix.
func (o *Ops) findKey(ctx context.Context, tenantID, ref string) (*store.APIKey, error) {
	if ref == "" {
		return nil, store.ErrNotFound
	}
	k, err := o.st.GetKey(ctx, tenantID, ref)
	if errors.Is(err, store.ErrNotFound) {
		k, err = o.st.GetKeyByPrefix(ctx, tenantID, ref)
	}
	return k, err
}

func normKey(k *store.APIKey) {
	k.Scopes = nonNil(k.Scopes)
	k.Hash = nil
}

// KeyState is what a key is at now: "revoked", "expired", "rotated" (it
// still works for the rotation overlap) or "active".
func KeyState(k *store.APIKey, now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked"
	case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
		return "expired"
	case k.RotatedTo != "":
		return "rotated"
	}
	return "active"
}
