package sqlbase

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const keyCols = `id, tenant_id, user_id, name, prefix, hash, role, scopes, expires_at, last_used_at, revoked_at, rotated_to, created_at`

func scanKey(r Row) (*store.APIKey, error) {
	var k store.APIKey
	err := r.Scan(&k.ID, &k.TenantID, strCol{&k.UserID}, &k.Name, &k.Prefix, &k.Hash, &k.Role, listCol{&k.Scopes},
		timeCol{&k.ExpiresAt}, timeCol{&k.LastUsedAt}, timeCol{&k.RevokedAt}, strCol{&k.RotatedTo}, timeCol{&k.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

func checkKey(k *store.APIKey) error {
	switch {
	case k.Prefix == "":
		return invalid("key prefix: must not be empty")
	case len(k.Hash) == 0:
		return invalid("key hash: must not be empty")
	case !validRole(k.Role):
		return invalid("key role %q: want viewer, member, admin or owner", k.Role)
	}
	return nil
}

// insertKey stores k, filling ID (unless set) and CreatedAt on success.
func (s *Store) insertKey(ctx context.Context, q Q, k *store.APIKey) error {
	id, now := k.ID, s.now()
	if id == "" {
		id = store.NewID()
	}
	_, err := q.Exec(ctx, `INSERT INTO api_keys (`+keyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, k.TenantID, nullStr(k.UserID), k.Name, k.Prefix, k.Hash, k.Role, jsonList(k.Scopes),
		ts(k.ExpiresAt), ts(k.LastUsedAt), ts(k.RevokedAt), nullStr(k.RotatedTo), now)
	switch {
	case s.e.IsUnique(err):
		return conflict("key " + quote(id) + " with prefix " + quote(k.Prefix) + " (the id, prefix or hash is taken)")
	case s.e.IsForeignKey(err):
		if k.UserID != "" {
			return fmt.Errorf("tenant %q or its user %q: %w", k.TenantID, k.UserID, store.ErrNotFound)
		}
		return notFound("tenant", k.TenantID)
	case err != nil:
		return err
	}
	k.ID, k.CreatedAt = id, now
	return nil
}

func (s *Store) CreateKey(ctx context.Context, k *store.APIKey) (err error) {
	defer wrap(&err, "creating key %q", k.Prefix)
	if err := checkKey(k); err != nil {
		return err
	}
	saved := *k
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		*k = saved // a retried transaction starts from the caller's key
		return s.insertKey(ctx, q, k)
	})
	if err != nil {
		*k = saved
	}
	return err
}

func (s *Store) GetKeyByHash(ctx context.Context, hash []byte) (_ *store.APIKey, err error) {
	defer wrap(&err, "getting a key by hash")
	k, err := scanKey(s.e.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, hash))
	if isNoRows(err) {
		return nil, fmt.Errorf("key with this hash: %w", store.ErrNotFound)
	}
	return k, err
}

// getKey finds a key by a unique column within a tenant ("" = any tenant).
func (s *Store) getKey(ctx context.Context, q Q, col, tenantID, v, lock string) (*store.APIKey, error) {
	query := `SELECT ` + keyCols + ` FROM api_keys WHERE ` + col + ` = ?`
	args := []any{v}
	if tenantID != "" {
		query += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	k, err := scanKey(q.QueryRow(ctx, query+lock, args...))
	if isNoRows(err) {
		return nil, notFound("key", v)
	}
	return k, err
}

func (s *Store) GetKey(ctx context.Context, tenantID, id string) (_ *store.APIKey, err error) {
	defer wrap(&err, "getting key %q", id)
	return s.getKey(ctx, s.e, "id", tenantID, id, "")
}

func (s *Store) GetKeyByPrefix(ctx context.Context, tenantID, prefix string) (_ *store.APIKey, err error) {
	defer wrap(&err, "getting key %q", prefix)
	return s.getKey(ctx, s.e, "prefix", tenantID, prefix, "")
}

func (s *Store) ListKeys(ctx context.Context, tenantID string) (_ []store.APIKey, err error) {
	defer wrap(&err, "listing keys")
	return collect(ctx, s.e, scanKey, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC, id DESC`, tenantID)
}

// RevokeKey records the revocation only the first time, so the revocation
// list holds one record per key however often an operator clicks. The
// record expires with the key: once the key has expired nobody needs to
// be told that it is revoked.
func (s *Store) RevokeKey(ctx context.Context, tenantID, id string, at time.Time) (err error) {
	defer wrap(&err, "revoking key %q", id)
	if at.IsZero() {
		at = s.now()
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		k, err := s.getKey(ctx, q, "id", tenantID, id, s.e.ForUpdate())
		if err != nil {
			return err
		}
		if !k.RevokedAt.IsZero() {
			return nil
		}
		if _, err := q.Exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ?`, ts(at), id); err != nil {
			return err
		}
		return revoke(ctx, q, &store.Revocation{Kind: "key", Subject: id, At: at, ExpiresAt: k.ExpiresAt})
	})
}

// RotateKey refuses (ErrConflict) to rotate a key that is revoked or was
// already rotated: a revoked key must not mint a valid successor, and a
// second rotation would fork the chain of successors.
func (s *Store) RotateKey(ctx context.Context, tenantID, oldID string, next *store.APIKey, oldExpires time.Time) (err error) {
	defer wrap(&err, "rotating key %q", oldID)
	if next.TenantID != "" && next.TenantID != tenantID {
		return invalid("successor key: tenant %q differs from the rotated key's tenant %q", next.TenantID, tenantID)
	}
	if err := checkKey(next); err != nil {
		return err
	}
	saved := *next
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		*next = saved
		next.TenantID = tenantID
		old, err := s.getKey(ctx, q, "id", tenantID, oldID, s.e.ForUpdate())
		if err != nil {
			return err
		}
		if !old.RevokedAt.IsZero() {
			return conflict("key " + quote(oldID) + " is revoked; it can not be rotated")
		}
		if old.RotatedTo != "" {
			return conflict("key " + quote(oldID) + " was already rotated to " + quote(old.RotatedTo))
		}
		if err := s.insertKey(ctx, q, next); err != nil {
			return err
		}
		exp := old.ExpiresAt
		if !oldExpires.IsZero() && (exp.IsZero() || oldExpires.Before(exp)) {
			exp = oldExpires
		}
		_, err = q.Exec(ctx, `UPDATE api_keys SET rotated_to = ?, expires_at = ? WHERE id = ?`, next.ID, ts(exp), oldID)
		return err
	})
	if err != nil {
		*next = saved
	}
	return err
}

// TouchKeys updates in one transaction, so a batch costs one commit, and in
// id order, so that two concurrent batches lock rows in the same order.
func (s *Store) TouchKeys(ctx context.Context, lastUsed map[string]time.Time) (err error) {
	defer wrap(&err, "recording key use")
	if len(lastUsed) == 0 {
		return nil
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		for _, id := range slices.Sorted(maps.Keys(lastUsed)) {
			at := lastUsed[id]
			if at.IsZero() {
				continue
			}
			_, err := q.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`,
				ts(at), id, ts(at))
			if err != nil {
				return err
			}
		}
		return nil
	})
}
