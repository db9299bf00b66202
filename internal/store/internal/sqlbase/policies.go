package sqlbase

import (
	"context"

	"github.com/mcpedge/mcpedge/internal/store"
)

const planCols = `name, key_per_minute, key_burst, tenant_per_minute, tenant_burst, ip_per_minute, ip_burst,
	monthly_quota, lattice_max_points, lattice_timeout_ms, updated_at`

func scanPlan(r Row) (*store.Plan, error) {
	var p store.Plan
	err := r.Scan(&p.Name, &p.KeyPerMinute, &p.KeyBurst, &p.TenantPerMinute, &p.TenantBurst, &p.IPPerMinute, &p.IPBurst,
		&p.MonthlyQuota, &p.LatticeMaxPoints, &p.LatticeTimeoutMS, timeCol{&p.UpdatedAt})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// PutPlan fills UpdatedAt.
func (s *Store) PutPlan(ctx context.Context, p *store.Plan) (err error) {
	defer wrap(&err, "saving plan %q", p.Name)
	if p.Name == "" {
		return invalid("plan name: must not be empty")
	}
	now := s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO plans (`+planCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET
				key_per_minute = excluded.key_per_minute, key_burst = excluded.key_burst,
				tenant_per_minute = excluded.tenant_per_minute, tenant_burst = excluded.tenant_burst,
				ip_per_minute = excluded.ip_per_minute, ip_burst = excluded.ip_burst,
				monthly_quota = excluded.monthly_quota, lattice_max_points = excluded.lattice_max_points,
				lattice_timeout_ms = excluded.lattice_timeout_ms, updated_at = excluded.updated_at`,
			p.Name, p.KeyPerMinute, p.KeyBurst, p.TenantPerMinute, p.TenantBurst, p.IPPerMinute, p.IPBurst,
			p.MonthlyQuota, p.LatticeMaxPoints, p.LatticeTimeoutMS, now)
		if err != nil {
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
	if err == nil {
		p.UpdatedAt = now
	}
	return err
}

func (s *Store) ListPlans(ctx context.Context) (_ []store.Plan, err error) {
	defer wrap(&err, "listing plans")
	return collect(ctx, s.e, scanPlan, `SELECT `+planCols+` FROM plans ORDER BY name`)
}

func (s *Store) DeletePlan(ctx context.Context, name string) (err error) {
	defer wrap(&err, "deleting plan %q", name)
	return s.deletePolicy(ctx, "plan", `DELETE FROM plans WHERE name = ?`, name)
}

// deletePolicy runs a DELETE of one policy object and advances the policy
// version; ErrNotFound (naming kind and the last arg) when nothing matched.
func (s *Store) deletePolicy(ctx context.Context, kind, query string, args ...any) error {
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound(kind, args[len(args)-1].(string))
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
}

const vsCols = `id, tenant_id, name, upstreams, tools, created_at`

func scanVS(r Row) (*store.VirtualServer, error) {
	var v store.VirtualServer
	err := r.Scan(&v.ID, &v.TenantID, &v.Name, listCol{&v.Upstreams}, listCol{&v.Tools}, timeCol{&v.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func (s *Store) CreateVirtualServer(ctx context.Context, v *store.VirtualServer) (err error) {
	defer wrap(&err, "creating virtual server %q", v.Name)
	if v.Name == "" {
		return invalid("virtual server name: must not be empty")
	}
	id, now := store.NewID(), s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO virtual_servers (`+vsCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			id, v.TenantID, v.Name, jsonList(v.Upstreams), jsonList(v.Tools), now)
		switch {
		case s.e.IsUnique(err):
			return conflict("virtual server name " + quote(v.Name) + " in this tenant")
		case s.e.IsForeignKey(err):
			return notFound("tenant", v.TenantID)
		case err != nil:
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
	if err == nil {
		v.ID, v.CreatedAt = id, now
	}
	return err
}

func (s *Store) ListVirtualServers(ctx context.Context, tenantID string) (_ []store.VirtualServer, err error) {
	defer wrap(&err, "listing virtual servers")
	return collect(ctx, s.e, scanVS, `SELECT `+vsCols+` FROM virtual_servers WHERE tenant_id = ? ORDER BY name`, tenantID)
}

func (s *Store) UpdateVirtualServer(ctx context.Context, v *store.VirtualServer) (err error) {
	defer wrap(&err, "updating virtual server %q", v.ID)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `UPDATE virtual_servers SET upstreams = ?, tools = ? WHERE tenant_id = ? AND id = ?`,
			jsonList(v.Upstreams), jsonList(v.Tools), v.TenantID, v.ID)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("virtual server", v.ID)
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
}

func (s *Store) DeleteVirtualServer(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting virtual server %q", id)
	return s.deletePolicy(ctx, "virtual server", `DELETE FROM virtual_servers WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

const ruleCols = `id, tenant_id, tool, effect, roles, scopes, priority, created_at`

func scanRule(r Row) (*store.Rule, error) {
	var u store.Rule
	err := r.Scan(&u.ID, &u.TenantID, &u.Tool, &u.Effect, listCol{&u.Roles}, listCol{&u.Scopes}, &u.Priority, timeCol{&u.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *Store) CreateRule(ctx context.Context, r *store.Rule) (err error) {
	defer wrap(&err, "creating a rule for %q", r.Tool)
	if r.Effect != "allow" && r.Effect != "deny" {
		return invalid("rule effect %q: want allow or deny", r.Effect)
	}
	if r.Tool == "" {
		return invalid("rule tool: must not be empty (use * for every tool)")
	}
	id, now := store.NewID(), s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO rules (`+ruleCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, r.TenantID, r.Tool, r.Effect, jsonList(r.Roles), jsonList(r.Scopes), r.Priority, now)
		switch {
		case s.e.IsForeignKey(err):
			return notFound("tenant", r.TenantID)
		case err != nil:
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
	if err == nil {
		r.ID, r.CreatedAt = id, now
	}
	return err
}

func (s *Store) ListRules(ctx context.Context, tenantID string) (_ []store.Rule, err error) {
	defer wrap(&err, "listing rules")
	return collect(ctx, s.e, scanRule, `SELECT `+ruleCols+` FROM rules WHERE tenant_id = ?
		ORDER BY priority DESC, CASE effect WHEN 'deny' THEN 0 ELSE 1 END, id`, tenantID)
}

func (s *Store) DeleteRule(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting rule %q", id)
	return s.deletePolicy(ctx, "rule", `DELETE FROM rules WHERE tenant_id = ? AND id = ?`, tenantID, id)
}

func (s *Store) PolicyVersion(ctx context.Context) (v int64, err error) {
	defer wrap(&err, "reading the policy version")
	err = s.e.QueryRow(ctx, `SELECT value FROM counters WHERE name = ?`, counterPolicy).Scan(&v)
	return v, err
}
