-- Client sessions of the MCP session era (internal/sessionstore,
-- docs/design/sessions.md): what any replica, or this gateway after a
-- restart, needs to serve a session's next request. The session id is
-- kept only as its SHA-256 (id_hash); state is JSON, opaque to the store.
CREATE TABLE mcp_sessions (
	id_hash    TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL DEFAULT '',
	binding    TEXT NOT NULL,
	state      BLOB NOT NULL,
	version    INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX mcp_sessions_expires ON mcp_sessions (expires_at);
CREATE INDEX mcp_sessions_tenant ON mcp_sessions (tenant_id);
