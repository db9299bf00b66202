package sqlbase

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const userCols = `id, tenant_id, name, role, password_hash, disabled, failed_logins, locked_until, created_at`

func scanUser(r Row) (*store.User, error) {
	var u store.User
	err := r.Scan(&u.ID, &u.TenantID, &u.Name, &u.Role, &u.PasswordHash, &u.Disabled, &u.FailedLogins, timeCol{&u.LockedUntil}, timeCol{&u.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *Store) CreateUser(ctx context.Context, u *store.User) (err error) {
	defer wrap(&err, "creating user %q", u.Name)
	if u.Name == "" {
		return invalid("user name: must not be empty")
	}
	if !validRole(u.Role) {
		return invalid("user role %q: want viewer, member, admin or owner", u.Role)
	}
	id, now := store.NewID(), s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, u.TenantID, u.Name, u.Role, u.PasswordHash, u.Disabled, u.FailedLogins, ts(u.LockedUntil), now)
		switch {
		case s.e.IsUnique(err):
			return conflict("user name " + quote(u.Name) + " in this tenant")
		case s.e.IsForeignKey(err):
			return notFound("tenant", u.TenantID)
		case err != nil:
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
	if err == nil {
		u.ID, u.CreatedAt = id, now
	}
	return err
}

func (s *Store) GetUser(ctx context.Context, tenantID, id string) (_ *store.User, err error) {
	defer wrap(&err, "getting user %q", id)
	u, err := scanUser(s.e.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if isNoRows(err) {
		return nil, notFound("user", id)
	}
	return u, err
}

func (s *Store) GetUserByName(ctx context.Context, tenantID, name string) (_ *store.User, err error) {
	defer wrap(&err, "getting user %q", name)
	u, err := scanUser(s.e.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = ? AND name = ?`, tenantID, name))
	if isNoRows(err) {
		return nil, notFound("user", name)
	}
	return u, err
}

func (s *Store) ListUsers(ctx context.Context, tenantID string) (_ []store.User, err error) {
	defer wrap(&err, "listing users")
	return collect(ctx, s.e, scanUser, `SELECT `+userCols+` FROM users WHERE tenant_id = ? ORDER BY name`, tenantID)
}

// keepsOwner returns ErrLastOwner if cur is an enabled owner of its tenant
// and no other enabled owner exists. The caller has locked the tenant row,
// so the count can not change before commit.
func (s *Store) keepsOwner(ctx context.Context, q Q, cur *store.User) error {
	if cur.Role != "owner" || cur.Disabled {
		return nil
	}
	var others int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = ? AND role = 'owner' AND NOT disabled AND id <> ?`,
		cur.TenantID, cur.ID).Scan(&others)
	if err != nil {
		return err
	}
	if others == 0 {
		return fmt.Errorf("user %q is the last owner: %w", cur.Name, store.ErrLastOwner)
	}
	return nil
}

// lockedUser locks the user's tenant (the unit the last-owner rule is about)
// and returns the user as it is now.
func (s *Store) lockedUser(ctx context.Context, q Q, tenantID, id string) (*store.User, error) {
	var found string
	err := q.QueryRow(ctx, `SELECT id FROM tenants WHERE id = ?`+s.e.ForUpdate(), tenantID).Scan(&found)
	if isNoRows(err) {
		return nil, notFound("user", id)
	}
	if err != nil {
		return nil, err
	}
	cur, err := scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if isNoRows(err) {
		return nil, notFound("user", id)
	}
	return cur, err
}

func (s *Store) UpdateUser(ctx context.Context, u *store.User) (err error) {
	defer wrap(&err, "updating user %q", u.ID)
	if !validRole(u.Role) {
		return invalid("user role %q: want viewer, member, admin or owner", u.Role)
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		cur, err := s.lockedUser(ctx, q, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		if u.Role != "owner" || u.Disabled {
			if err := s.keepsOwner(ctx, q, cur); err != nil {
				return err
			}
		}
		_, err = q.Exec(ctx, `UPDATE users SET role = ?, password_hash = ?, disabled = ? WHERE id = ?`,
			u.Role, u.PasswordHash, u.Disabled, u.ID)
		if err != nil {
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
}

func (s *Store) DeleteUser(ctx context.Context, tenantID, id string) (err error) {
	defer wrap(&err, "deleting user %q", id)
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		cur, err := s.lockedUser(ctx, q, tenantID, id)
		if err != nil {
			return err
		}
		if err := s.keepsOwner(ctx, q, cur); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return err
		}
		_, err = bump(ctx, q, counterPolicy)
		return err
	})
}

// RecordLogin does not advance the policy version: a failed-login count is
// not policy, and bumping on every login would make every replica drop its
// policy cache on every login.
func (s *Store) RecordLogin(ctx context.Context, userID string, ok bool, lockedUntil time.Time) (n int, err error) {
	defer wrap(&err, "recording a login of user %q", userID)
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		if ok {
			lockedUntil = time.Time{}
		}
		return q.QueryRow(ctx, `UPDATE users SET
				failed_logins = CASE WHEN ? THEN 0 ELSE failed_logins + 1 END,
				locked_until = ?
			WHERE id = ? RETURNING failed_logins`, ok, ts(lockedUntil), userID).Scan(&n)
	})
	if isNoRows(err) {
		return 0, notFound("user", userID)
	}
	return n, err
}
