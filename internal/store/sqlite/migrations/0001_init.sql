-- mcpedge schema, version 1 (SQLite).
--
-- Times are INTEGER Unix microseconds in UTC; NULL means "not set". Lists
-- are JSON arrays of strings in TEXT. Tables are STRICT, so a value of the
-- wrong type is an error rather than silently stored.
-- Everything owned by a tenant is deleted with it (ON DELETE CASCADE),
-- except audit entries: the audit log is append-only.

CREATE TABLE tenants (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL UNIQUE,
	plan         TEXT NOT NULL DEFAULT '',
	operator     INTEGER NOT NULL DEFAULT 0,
	ip_allowlist TEXT NOT NULL DEFAULT '[]',
	disabled     INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL DEFAULT '',
	disabled      INTEGER NOT NULL DEFAULT 0,
	failed_logins INTEGER NOT NULL DEFAULT 0,
	locked_until  INTEGER,
	created_at    INTEGER NOT NULL,
	UNIQUE (tenant_id, name),
	-- the target of the (tenant_id, user_id) references below, which
	-- make a credential's user belong to the credential's tenant
	UNIQUE (tenant_id, id)
) STRICT;

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	user_id      TEXT,
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL UNIQUE,
	hash         BLOB NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	scopes       TEXT NOT NULL DEFAULT '[]',
	expires_at   INTEGER,
	last_used_at INTEGER,
	revoked_at   INTEGER,
	rotated_to   TEXT,
	created_at   INTEGER NOT NULL,
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE INDEX api_keys_user ON api_keys (tenant_id, user_id);

CREATE TABLE refresh_tokens (
	id         TEXT PRIMARY KEY,
	family_id  TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	tenant_id  TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	expires_at INTEGER,
	used_at    INTEGER,
	revoked_at INTEGER,
	created_at INTEGER NOT NULL,
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_tenant_user ON refresh_tokens (tenant_id, user_id);

CREATE TABLE plans (
	name               TEXT PRIMARY KEY,
	key_per_minute     INTEGER NOT NULL,
	key_burst          INTEGER NOT NULL,
	tenant_per_minute  INTEGER NOT NULL,
	tenant_burst       INTEGER NOT NULL,
	ip_per_minute      INTEGER NOT NULL,
	ip_burst           INTEGER NOT NULL,
	monthly_quota      INTEGER NOT NULL,
	lattice_max_points INTEGER NOT NULL,
	lattice_timeout_ms INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE virtual_servers (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	upstreams  TEXT NOT NULL DEFAULT '[]',
	tools      TEXT NOT NULL DEFAULT '[]',
	created_at INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
) STRICT;

CREATE TABLE rules (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	tool       TEXT NOT NULL,
	effect     TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
	roles      TEXT NOT NULL DEFAULT '[]',
	scopes     TEXT NOT NULL DEFAULT '[]',
	priority   INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX rules_tenant ON rules (tenant_id);

-- counters: 'policy' is PolicyVersion, 'revocation' the last revocation Seq.
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;
INSERT INTO counters (name, value) VALUES ('policy', 0), ('revocation', 0);

CREATE TABLE revocations (
	seq        INTEGER PRIMARY KEY,
	kind       TEXT NOT NULL,
	subject    TEXT NOT NULL,
	at         INTEGER NOT NULL,
	expires_at INTEGER
) STRICT;
CREATE INDEX revocations_subject ON revocations (kind, subject);

-- tenant_id has no foreign key: entries outlive their tenant.
-- detail is a BLOB, kept byte for byte, because the hash covers it.
CREATE TABLE audit (
	seq        INTEGER PRIMARY KEY,
	at         INTEGER NOT NULL,
	tenant_id  TEXT NOT NULL DEFAULT '',
	actor      TEXT NOT NULL,
	actor_kind TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	latency_us INTEGER NOT NULL DEFAULT 0,
	client_ip  TEXT NOT NULL DEFAULT '',
	detail     BLOB,
	prev_hash  BLOB,
	hash       BLOB NOT NULL
) STRICT;
CREATE INDEX audit_tenant ON audit (tenant_id, seq);
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_at ON audit (at);

-- The chain head: one row that appenders lock, so the chain never forks.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  INTEGER NOT NULL,
	hash BLOB
) STRICT;
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);

CREATE TABLE usage (
	tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	period    TEXT NOT NULL,
	n         INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, period)
) STRICT;

-- ord orders lattices by creation (INTEGER PRIMARY KEY: the rowid).
CREATE TABLE lattices (
	ord        INTEGER PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE,
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	spec       BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX lattices_tenant ON lattices (tenant_id, ord);

CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
