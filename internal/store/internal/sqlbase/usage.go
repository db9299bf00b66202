package sqlbase

import (
	"context"

	"github.com/mcpedge/mcpedge/internal/store"
)

// AddUsage is one upsert, atomic on both databases without a lock of ours.
func (s *Store) AddUsage(ctx context.Context, tenantID, period string, n int64) (total int64, err error) {
	defer wrap(&err, "adding usage of tenant %q in %s", tenantID, period)
	if period == "" {
		return 0, invalid("usage period: must not be empty")
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		err := q.QueryRow(ctx, `INSERT INTO usage (tenant_id, period, n) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, period) DO UPDATE SET n = usage.n + excluded.n
			RETURNING n`, tenantID, period, n).Scan(&total)
		if s.e.IsForeignKey(err) {
			return notFound("tenant", tenantID)
		}
		return err
	})
	return total, err
}

// GetUsage is 0 for a period without usage.
func (s *Store) GetUsage(ctx context.Context, tenantID, period string) (n int64, err error) {
	defer wrap(&err, "getting usage of tenant %q in %s", tenantID, period)
	err = s.e.QueryRow(ctx, `SELECT n FROM usage WHERE tenant_id = ? AND period = ?`, tenantID, period).Scan(&n)
	if isNoRows(err) {
		return 0, nil
	}
	return n, err
}

const latticeCols = `id, tenant_id, name, spec, created_at`

func scanLattice(r Row) (*store.Lattice, error) {
	var l store.Lattice
	if err := r.Scan(&l.ID, &l.TenantID, &l.Name, &l.Spec, timeCol{&l.CreatedAt}); err != nil {
		return nil, err
	}
	return &l, nil
}

// CreateLattice returns ErrConflict when l.ID is set and taken.
func (s *Store) CreateLattice(ctx context.Context, l *store.Lattice) (err error) {
	defer wrap(&err, "creating lattice %q", l.Name)
	id, now := l.ID, s.now()
	if id == "" {
		id = store.NewID()
	}
	spec := l.Spec
	if spec == nil {
		spec = []byte{}
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO lattices (`+latticeCols+`) VALUES (?, ?, ?, ?, ?)`, id, l.TenantID, l.Name, spec, now)
		switch {
		case s.e.IsUnique(err):
			return conflict("lattice id " + quote(id))
		case s.e.IsForeignKey(err):
			return notFound("tenant", l.TenantID)
		}
		return err
	})
	if err == nil {
		l.ID, l.CreatedAt = id, now
	}
	return err
}

func (s *Store) GetLattice(ctx context.Context, tenantID, id string) (_ *store.Lattice, err error) {
	defer wrap(&err, "getting lattice %q", id)
	l, err := scanLattice(s.e.QueryRow(ctx, `SELECT `+latticeCols+` FROM lattices WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if isNoRows(err) {
		return nil, notFound("lattice", id)
	}
	return l, err
}

// ListLattices orders by insertion (the ord column), which is creation
// order even for lattices created within the same microsecond.
func (s *Store) ListLattices(ctx context.Context, tenantID string) (_ []store.Lattice, err error) {
	defer wrap(&err, "listing lattices")
	return collect(ctx, s.e, scanLattice, `SELECT `+latticeCols+` FROM lattices WHERE tenant_id = ? ORDER BY ord`, tenantID)
}

func (s *Store) DeleteLattice(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting lattice %q", id)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		n, err := q.Exec(ctx, `DELETE FROM lattices WHERE tenant_id = ? AND id = ?`, tenantID, id)
		if err == nil && n == 0 {
			return notFound("lattice", id)
		}
		return err
	})
}

func (s *Store) CountLattices(ctx context.Context, tenantID string) (n int, err error) {
	defer wrap(&err, "counting lattices")
	err = s.e.QueryRow(ctx, `SELECT COUNT(*) FROM lattices WHERE tenant_id = ?`, tenantID).Scan(&n)
	return n, err
}
