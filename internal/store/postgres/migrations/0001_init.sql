-- mcpedge schema, version 1 (PostgreSQL).
--
-- The same tables as the SQLite schema, in native types: TIMESTAMPTZ
-- (NULL means "not set"), BOOLEAN, BYTEA, and JSONB for lists of strings.
-- Identifiers and names are COLLATE "C" so that listings sort by bytes,
-- the same on every server and the same as on SQLite.
-- Everything owned by a tenant is deleted with it (ON DELETE CASCADE),
-- except audit entries: the audit log is append-only.

CREATE TABLE tenants (
	id           TEXT COLLATE "C" PRIMARY KEY,
	name         TEXT COLLATE "C" NOT NULL UNIQUE,
	plan         TEXT NOT NULL DEFAULT '',
	operator     BOOLEAN NOT NULL DEFAULT false,
	ip_allowlist JSONB NOT NULL DEFAULT '[]',
	disabled     BOOLEAN NOT NULL DEFAULT false,
	created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
	id            TEXT COLLATE "C" PRIMARY KEY,
	tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name          TEXT COLLATE "C" NOT NULL,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL DEFAULT '',
	disabled      BOOLEAN NOT NULL DEFAULT false,
	failed_logins INTEGER NOT NULL DEFAULT 0,
	locked_until  TIMESTAMPTZ,
	created_at    TIMESTAMPTZ NOT NULL,
	UNIQUE (tenant_id, name),
	-- the target of the (tenant_id, user_id) references below, which
	-- make a credential's user belong to the credential's tenant
	UNIQUE (tenant_id, id)
);

CREATE TABLE api_keys (
	id           TEXT COLLATE "C" PRIMARY KEY,
	tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	user_id      TEXT COLLATE "C",
	name         TEXT NOT NULL,
	prefix       TEXT COLLATE "C" NOT NULL UNIQUE,
	hash         BYTEA NOT NULL UNIQUE,
	role         TEXT NOT NULL,
	scopes       JSONB NOT NULL DEFAULT '[]',
	expires_at   TIMESTAMPTZ,
	last_used_at TIMESTAMPTZ,
	revoked_at   TIMESTAMPTZ,
	rotated_to   TEXT COLLATE "C",
	created_at   TIMESTAMPTZ NOT NULL,
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE INDEX api_keys_user ON api_keys (tenant_id, user_id);

CREATE TABLE refresh_tokens (
	id         TEXT COLLATE "C" PRIMARY KEY,
	family_id  TEXT COLLATE "C" NOT NULL,
	user_id    TEXT COLLATE "C" NOT NULL,
	tenant_id  TEXT COLLATE "C" NOT NULL,
	hash       BYTEA NOT NULL UNIQUE,
	expires_at TIMESTAMPTZ,
	used_at    TIMESTAMPTZ,
	revoked_at TIMESTAMPTZ,
	created_at TIMESTAMPTZ NOT NULL,
	FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_tenant_user ON refresh_tokens (tenant_id, user_id);

CREATE TABLE plans (
	name               TEXT COLLATE "C" PRIMARY KEY,
	key_per_minute     BIGINT NOT NULL,
	key_burst          BIGINT NOT NULL,
	tenant_per_minute  BIGINT NOT NULL,
	tenant_burst       BIGINT NOT NULL,
	ip_per_minute      BIGINT NOT NULL,
	ip_burst           BIGINT NOT NULL,
	monthly_quota      BIGINT NOT NULL,
	lattice_max_points BIGINT NOT NULL,
	lattice_timeout_ms BIGINT NOT NULL,
	updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE virtual_servers (
	id         TEXT COLLATE "C" PRIMARY KEY,
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT COLLATE "C" NOT NULL,
	upstreams  JSONB NOT NULL DEFAULT '[]',
	tools      JSONB NOT NULL DEFAULT '[]',
	created_at TIMESTAMPTZ NOT NULL,
	UNIQUE (tenant_id, name)
);

CREATE TABLE rules (
	id         TEXT COLLATE "C" PRIMARY KEY,
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	tool       TEXT NOT NULL,
	effect     TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
	roles      JSONB NOT NULL DEFAULT '[]',
	scopes     JSONB NOT NULL DEFAULT '[]',
	priority   INTEGER NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX rules_tenant ON rules (tenant_id);

-- counters: 'policy' is PolicyVersion, 'revocation' the last revocation
-- Seq. Writers lock the row until commit, so values appear in commit
-- order (a sequence would not: a poller could skip a late commit).
CREATE TABLE counters (
	name  TEXT COLLATE "C" PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('policy', 0), ('revocation', 0);

CREATE TABLE revocations (
	seq        BIGINT PRIMARY KEY,
	kind       TEXT COLLATE "C" NOT NULL,
	subject    TEXT COLLATE "C" NOT NULL,
	at         TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ
);
CREATE INDEX revocations_subject ON revocations (kind, subject);

-- tenant_id has no foreign key: entries outlive their tenant.
-- detail is BYTEA, kept byte for byte (JSONB would normalize it and break
-- the hash, which covers the exact bytes).
CREATE TABLE audit (
	seq        BIGINT PRIMARY KEY,
	at         TIMESTAMPTZ NOT NULL,
	tenant_id  TEXT COLLATE "C" NOT NULL DEFAULT '',
	actor      TEXT COLLATE "C" NOT NULL,
	actor_kind TEXT NOT NULL,
	action     TEXT COLLATE "C" NOT NULL,
	target     TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	latency_us BIGINT NOT NULL DEFAULT 0,
	client_ip  TEXT NOT NULL DEFAULT '',
	detail     BYTEA,
	prev_hash  BYTEA,
	hash       BYTEA NOT NULL
);
CREATE INDEX audit_tenant ON audit (tenant_id, seq);
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_at ON audit (at);

-- The chain head: one row that appenders lock (FOR UPDATE), so the chain
-- never forks, whichever replica appends.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash BYTEA
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, NULL);

CREATE TABLE usage (
	tenant_id TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	period    TEXT COLLATE "C" NOT NULL,
	n         BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, period)
);

-- ord orders lattices by creation.
CREATE TABLE lattices (
	ord        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id         TEXT COLLATE "C" NOT NULL UNIQUE,
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	spec       BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX lattices_tenant ON lattices (tenant_id, ord);

CREATE TABLE secrets (
	name       TEXT COLLATE "C" PRIMARY KEY,
	value      BYTEA NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);
