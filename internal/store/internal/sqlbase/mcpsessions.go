package sqlbase

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/store"
)

const mcpSessionCols = `id_hash, tenant_id, binding, state, version, created_at, updated_at, expires_at`

func scanMCPSession(r Row) (*store.MCPSession, error) {
	var s store.MCPSession
	err := r.Scan(&s.IDHash, &s.TenantID, &s.Binding, &s.State, &s.Version,
		timeCol{&s.CreatedAt}, timeCol{&s.UpdatedAt}, timeCol{&s.ExpiresAt})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// validMCPSession checks what every stored session must have.
func validMCPSession(s *store.MCPSession) error {
	switch {
	case s.IDHash == "" || len(s.IDHash) > 128:
		return invalid("mcp session: id_hash must be 1 to 128 characters")
	case s.Binding == "":
		return invalid("mcp session %q: the binding is required", s.IDHash)
	case len(s.State) == 0:
		return invalid("mcp session %q: the state is required", s.IDHash)
	case s.ExpiresAt.IsZero():
		return invalid("mcp session %q: the expiry is required", s.IDHash)
	}
	return nil
}

// CreateMCPSession stores a new client session at version 1.
func (s *Store) CreateMCPSession(ctx context.Context, m *store.MCPSession) (err error) {
	defer wrap(&err, "storing mcp session")
	if err := validMCPSession(m); err != nil {
		return err
	}
	now := s.now()
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `INSERT INTO mcp_sessions (`+mcpSessionCols+`) VALUES (?, ?, ?, ?, 1, ?, ?, ?) ON CONFLICT (id_hash) DO NOTHING`,
			m.IDHash, m.TenantID, m.Binding, m.State, now, now, ts(m.ExpiresAt))
		return err
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("mcp session " + m.IDHash)
	}
	m.Version, m.CreatedAt, m.UpdatedAt, m.ExpiresAt = 1, now, now, ts(m.ExpiresAt)
	return nil
}

// GetMCPSession returns a live session.
func (s *Store) GetMCPSession(ctx context.Context, idHash string) (_ *store.MCPSession, err error) {
	defer wrap(&err, "reading mcp session")
	m, err := scanMCPSession(s.e.QueryRow(ctx, `SELECT `+mcpSessionCols+` FROM mcp_sessions WHERE id_hash = ? AND expires_at > ?`, idHash, s.now()))
	if isNoRows(err) {
		return nil, notFound("mcp session", idHash)
	}
	return m, err
}

// UpdateMCPSession replaces state and expiry at the version the caller read.
func (s *Store) UpdateMCPSession(ctx context.Context, m *store.MCPSession) (err error) {
	defer wrap(&err, "updating mcp session %q", m.IDHash)
	if err := validMCPSession(m); err != nil {
		return err
	}
	now := s.now()
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var version int64
		err := q.QueryRow(ctx, `SELECT version FROM mcp_sessions WHERE id_hash = ? AND expires_at > ?`+s.e.ForUpdate(), m.IDHash, now).Scan(&version)
		if isNoRows(err) {
			return notFound("mcp session", m.IDHash)
		}
		if err != nil {
			return err
		}
		if version != m.Version {
			return conflict("mcp session " + m.IDHash + " changed since it was read")
		}
		_, err = q.Exec(ctx, `UPDATE mcp_sessions SET state = ?, version = ?, updated_at = ?, expires_at = ? WHERE id_hash = ?`,
			m.State, version+1, now, ts(m.ExpiresAt), m.IDHash)
		return err
	})
	if err != nil {
		return err
	}
	m.Version, m.UpdatedAt, m.ExpiresAt = m.Version+1, now, ts(m.ExpiresAt)
	return nil
}

// TouchMCPSession extends a live session's expiry.
func (s *Store) TouchMCPSession(ctx context.Context, idHash string, expiresAt time.Time) (err error) {
	defer wrap(&err, "touching mcp session %q", idHash)
	now := s.now()
	return s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var cur time.Time
		err := q.QueryRow(ctx, `SELECT expires_at FROM mcp_sessions WHERE id_hash = ? AND expires_at > ?`+s.e.ForUpdate(), idHash, now).Scan(timeCol{&cur})
		if isNoRows(err) {
			return notFound("mcp session", idHash)
		}
		if err != nil || !ts(expiresAt).After(cur) {
			return err
		}
		_, err = q.Exec(ctx, `UPDATE mcp_sessions SET expires_at = ? WHERE id_hash = ?`, ts(expiresAt), idHash)
		return err
	})
}

// DeleteMCPSession removes a session, live or expired.
func (s *Store) DeleteMCPSession(ctx context.Context, idHash string) (err error) {
	defer wrap(&err, "deleting mcp session %q", idHash)
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM mcp_sessions WHERE id_hash = ?`, idHash)
		return err
	})
	if err == nil && n == 0 {
		return notFound("mcp session", idHash)
	}
	return err
}

// PurgeMCPSessions removes the sessions expired at or before before.
func (s *Store) PurgeMCPSessions(ctx context.Context, before time.Time) (_ int, err error) {
	defer wrap(&err, "purging expired mcp sessions")
	var n int64
	err = s.e.Tx(ctx, TxOptions{}, func(q Q) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM mcp_sessions WHERE expires_at <= ?`, ts(before))
		return err
	})
	return int(n), err
}
