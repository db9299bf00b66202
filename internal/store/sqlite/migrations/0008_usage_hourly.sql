-- Usage metering (internal/metering, docs/platform.md): tool calls counted
-- per tenant, hour, caller, upstream, tool and outcome. Each replica adds
-- its own counts with an upsert (n = n + excluded.n), so several replicas
-- flushing the same row never lose or double an increment.
--
-- hour is the start of the hour in Unix microseconds (UTC); actor is the
-- principal id (key id, user id, "oidc:<sub>", "" for the single local
-- user) and actor_kind its kind; outcome is ok | error | denied.
CREATE TABLE usage_hourly (
	tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	hour       INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	actor_kind TEXT NOT NULL,
	upstream   TEXT NOT NULL,
	tool       TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	n          INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour, upstream, tool, actor, actor_kind, outcome)
) STRICT;
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
