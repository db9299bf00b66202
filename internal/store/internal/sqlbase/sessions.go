package sqlbase

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const tokenCols = `id, family_id, user_id, tenant_id, hash, expires_at, used_at, revoked_at, created_at`

func scanToken(r Row) (*store.RefreshToken, error) {
	var t store.RefreshToken
	err := r.Scan(&t.ID, &t.FamilyID, &t.UserID, &t.TenantID, &t.Hash,
		timeCol{&t.ExpiresAt}, timeCol{&t.UsedAt}, timeCol{&t.RevokedAt}, timeCol{&t.CreatedAt})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateRefreshToken fills ID and CreatedAt, and FamilyID when empty (the
// first token of a login starts its own family).
func (s *Store) CreateRefreshToken(ctx context.Context, t *store.RefreshToken) (err error) {
	defer wrap(&err, "creating a refresh token")
	if len(t.Hash) == 0 {
		return invalid("refresh token hash: must not be empty")
	}
	id, now := store.NewID(), s.now()
	family := t.FamilyID
	if family == "" {
		family = id
	}
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		_, err := q.Exec(ctx, `INSERT INTO refresh_tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, family, t.UserID, t.TenantID, t.Hash, ts(t.ExpiresAt), ts(t.UsedAt), ts(t.RevokedAt), now)
		switch {
		case s.e.IsUnique(err):
			return conflict("refresh token with this hash")
		case s.e.IsForeignKey(err):
			return fmt.Errorf("user %q in tenant %q: %w", t.UserID, t.TenantID, store.ErrNotFound)
		}
		return err
	})
	if err == nil {
		t.ID, t.FamilyID, t.CreatedAt = id, family, now
	}
	return err
}

func (s *Store) UseRefreshToken(ctx context.Context, hash []byte, at time.Time) (_ *store.RefreshToken, err error) {
	defer wrap(&err, "using a refresh token")
	if at.IsZero() {
		at = s.now()
	}
	var tok *store.RefreshToken
	var reused bool
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		tok, err = scanToken(q.QueryRow(ctx, `SELECT `+tokenCols+` FROM refresh_tokens WHERE hash = ?`+s.e.ForUpdate(), hash))
		if isNoRows(err) {
			return fmt.Errorf("refresh token: %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		reused = !tok.UsedAt.IsZero() || !tok.RevokedAt.IsZero()
		if reused {
			return s.revokeFamily(ctx, q, tok.FamilyID, at)
		}
		_, err = q.Exec(ctx, `UPDATE refresh_tokens SET used_at = ? WHERE id = ?`, ts(at), tok.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if reused {
		return tok, fmt.Errorf("refresh token of family %q: %w", tok.FamilyID, store.ErrReused)
	}
	return tok, nil
}

// revokeFamily revokes the family's live tokens and records the
// revocation, which may be pruned once the family's last token expired.
func (s *Store) revokeFamily(ctx context.Context, q Q, family string, at time.Time) error {
	var expires time.Time
	err := q.QueryRow(ctx, `SELECT MAX(expires_at) FROM refresh_tokens WHERE family_id = ?`, family).Scan(timeCol{&expires})
	if err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`, ts(at), family); err != nil {
		return err
	}
	return revoke(ctx, q, &store.Revocation{Kind: "token_family", Subject: family, At: at, ExpiresAt: expires})
}

// RevokeFamily of a family without tokens still records the revocation:
// the caller knows a family id, so a token of it exists somewhere (or
// will, in a replica that has not seen it yet).
func (s *Store) RevokeFamily(ctx context.Context, familyID string, at time.Time) (err error) {
	defer wrap(&err, "revoking token family %q", familyID)
	if at.IsZero() {
		at = s.now()
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		return s.revokeFamily(ctx, q, familyID, at)
	})
}

func (s *Store) RevokeUserSessions(ctx context.Context, userID string, at time.Time) (err error) {
	defer wrap(&err, "revoking the sessions of user %q", userID)
	if at.IsZero() {
		at = s.now()
	}
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		if _, err := q.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, ts(at), userID); err != nil {
			return err
		}
		return revoke(ctx, q, &store.Revocation{Kind: "user", Subject: userID, At: at})
	})
}
