package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const tenantCols = `id, name, plan, operator, ip_allowlist, disabled, created_at`

func scanTenant(r Row) (*store.Tenant, error) {
	var t store.Tenant
	err := r.Scan(&t.ID, &t.Name, &t.Plan, &t.Operator, listCol{&t.IPAllowlist}, &t.Disabled, timeCol{&t.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) (err error) {
	defer wrap(&err, "creating tenant %q", t.Name)
	if !tenantName.MatchString(t.Name) {
		return invalid("tenant name %q: want 1 to 32 of a-z 0-9 _ - starting with a letter or digit", t.Name)
	}
	id, now := store.NewID(), s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO tenants (`+tenantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, t.Name, t.Plan, t.Operator, jsonList(t.IPAllowlist), t.Disabled, now)
		if s.e.IsUnique(err) {
			return conflict("tenant name " + quote(t.Name))
		}
		if err != nil {
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
	if err == nil {
		t.ID, t.CreatedAt = id, now
	}
	return err
}

func (s *Store) GetTenant(ctx context.Context, id string) (_ *store.Tenant, err error) {
	defer wrap(&err, "getting tenant %q", id)
	t, err := scanTenant(s.e.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if isNoRows(err) {
		return nil, notFound("tenant", id)
	}
	return t, err
}

func (s *Store) GetTenantByName(ctx context.Context, name string) (_ *store.Tenant, err error) {
	defer wrap(&err, "getting tenant %q", name)
	t, err := scanTenant(s.e.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE name = ?`, name))
	if isNoRows(err) {
		return nil, notFound("tenant", name)
	}
	return t, err
}

func (s *Store) ListTenants(ctx context.Context) (_ []store.Tenant, err error) {
	defer wrap(&err, "listing tenants")
	return collect(ctx, s.e, scanTenant, `SELECT `+tenantCols+` FROM tenants ORDER BY name`)
}

func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) (err error) {
	defer wrap(&err, "updating tenant %q", t.ID)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `UPDATE tenants SET plan = ?, operator = ?, ip_allowlist = ?, disabled = ? WHERE id = ?`,
			t.Plan, t.Operator, jsonList(t.IPAllowlist), t.Disabled, t.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("tenant", t.ID)
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
}

// DeleteTenant also records a revocation for each of the tenant's live keys
// and users: their rows disappear, and replicas that cache credentials must
// learn that those stopped being valid just as if each had been revoked.
func (s *Store) DeleteTenant(ctx context.Context, id string) (err error) {
	defer wrap(&err, "deleting tenant %q", id)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var found string
		err := q.QueryRow(ctx, `SELECT id FROM tenants WHERE id = ?`+s.e.ForUpdate(), id).Scan(&found)
		if isNoRows(err) {
			return notFound("tenant", id)
		}
		if err != nil {
			return err
		}
		_, err = s.deleteTenantTx(ctx, q, id)
		return err
	})
}

// deleteTenantTx removes tenant id, which the caller has locked, with
// everything it owns but its audit entries, and records the revocations;
// it returns how many client sessions it removed.
func (s *Store) deleteTenantTx(ctx context.Context, q Q, id string) (int64, error) {
	type subject struct {
		kind, id string
		expires  time.Time
	}
	var subjects []subject
	rows, err := q.Query(ctx, `SELECT 'key', id, expires_at FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL
		UNION ALL SELECT 'user', id, NULL FROM users WHERE tenant_id = ? ORDER BY 1, 2`, id, id)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var sub subject
		if err := rows.Scan(&sub.kind, &sub.id, timeCol{&sub.expires}); err != nil {
			rows.Close()
			return 0, err
		}
		subjects = append(subjects, sub)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	// The tenant's client sessions end with it (internal/sessionstore).
	sessions, err := q.Exec(ctx, `DELETE FROM mcp_sessions WHERE tenant_id = ?`, id)
	if err != nil {
		return 0, err
	}
	// The tenant's data key goes with the tenant (ON DELETE CASCADE).
	if _, err := q.Exec(ctx, `DELETE FROM tenants WHERE id = ?`, id); err != nil {
		return 0, err
	}
	if _, err := bump(ctx, q, counterPolicy); err != nil {
		return 0, err
	}
	now := s.now()
	for _, sub := range subjects {
		if err := revoke(ctx, q, &store.Revocation{Kind: sub.kind, Subject: sub.id, At: now, ExpiresAt: sub.expires}); err != nil {
			return 0, err
		}
	}
	return sessions, nil
}

func (s *Store) CountTenants(ctx context.Context) (n int, err error) {
	defer wrap(&err, "counting tenants")
	err = s.e.QueryRow(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n)
	return n, err
}
