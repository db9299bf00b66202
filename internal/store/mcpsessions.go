package store

import (
	"context"
	"time"
)

// MCPSession is the saved state of one client session of the session era
// of MCP (protocol 2025-11-25 and earlier), shared by every replica so
// that any of them can serve the session's next request, and a restarted
// gateway its sessions (internal/sessionstore, docs/design/sessions.md).
//
// The session id itself is never stored: IDHash is its SHA-256 (hex), so
// a reader of the database cannot take over a session.
type MCPSession struct {
	IDHash string `json:"id_hash"`
	// TenantID is the tenant of the credential that opened the session
	// ("" in single-user mode); Binding a hash of that credential's
	// identity. Both are checked on every replica before the session is
	// served.
	TenantID string `json:"tenant_id"`
	Binding  string `json:"binding"`
	// State is opaque to the store (internal/sessionstore encodes it).
	State []byte `json:"state"`
	// Version counts the changes of State: UpdateMCPSession changes a
	// session only at the version its caller read.
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ExpiresAt is when the session ends unless it is used (Touch).
	ExpiresAt time.Time `json:"expires_at"`
}

// MCPSessions stores client sessions, shared by every replica.
type MCPSessions interface {
	// CreateMCPSession stores a new session and fills Version (1),
	// CreatedAt and UpdatedAt. ErrConflict when IDHash is taken.
	CreateMCPSession(ctx context.Context, s *MCPSession) error
	// GetMCPSession returns a session; ErrNotFound when there is none or
	// it has expired (ExpiresAt not after now).
	GetMCPSession(ctx context.Context, idHash string) (*MCPSession, error)
	// UpdateMCPSession replaces State and ExpiresAt of a session that is
	// still at s.Version, increments the version (s.Version is updated)
	// and sets UpdatedAt. ErrConflict when another change came first;
	// ErrNotFound when the session is gone or expired.
	UpdateMCPSession(ctx context.Context, s *MCPSession) error
	// TouchMCPSession moves the expiry of a live session to expiresAt if
	// that is later (it never shortens it); ErrNotFound when the session
	// is gone or expired.
	TouchMCPSession(ctx context.Context, idHash string, expiresAt time.Time) error
	// DeleteMCPSession removes a session; ErrNotFound when there is none.
	DeleteMCPSession(ctx context.Context, idHash string) error
	// PurgeMCPSessions removes the sessions that expired at or before
	// before, and returns how many.
	PurgeMCPSessions(ctx context.Context, before time.Time) (int, error)
}
