-- Client sessions of the MCP session era (internal/sessionstore,
-- docs/design/sessions.md): what any replica, or this gateway after a
-- restart, needs to serve a session's next request.
--
-- The same table as the SQLite migration 0006, in native types. The
-- session id is kept only as its SHA-256 (id_hash); state is JSON, opaque
-- to the store.
CREATE TABLE mcp_sessions (
	id_hash    TEXT COLLATE "C" PRIMARY KEY,
	tenant_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
	binding    TEXT NOT NULL,
	state      BYTEA NOT NULL,
	version    BIGINT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	updated_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mcp_sessions_expires ON mcp_sessions (expires_at);
CREATE INDEX mcp_sessions_tenant ON mcp_sessions (tenant_id);
