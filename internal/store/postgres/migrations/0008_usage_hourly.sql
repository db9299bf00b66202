-- Usage metering (internal/metering, docs/platform.md): tool calls counted
-- per tenant, hour, caller, upstream, tool and outcome. Each replica adds
-- its own counts with an upsert (n = n + excluded.n), so several replicas
-- flushing the same row never lose or double an increment.
--
-- The same table as the SQLite migration 0008, in native types. hour is
-- the start of the hour (UTC); actor is the principal id (key id, user
-- id, "oidc:<sub>", "" for the single local user) and actor_kind its
-- kind; outcome is ok | error | denied.
CREATE TABLE usage_hourly (
	tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	hour       TIMESTAMPTZ NOT NULL,
	actor      TEXT COLLATE "C" NOT NULL,
	actor_kind TEXT COLLATE "C" NOT NULL,
	upstream   TEXT COLLATE "C" NOT NULL,
	tool       TEXT COLLATE "C" NOT NULL,
	outcome    TEXT COLLATE "C" NOT NULL,
	n          BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, hour, upstream, tool, actor, actor_kind, outcome)
);
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
