package store

import (
	"context"
	"time"
)

// A UsageRecord is a count of metered tool calls: how many calls one
// caller of one tenant made of one tool, with one outcome, within one
// hour (usage metering, internal/metering, docs/platform.md).
type UsageRecord struct {
	TenantID string `json:"tenant_id"`
	// Hour is the start of the hour (UTC) the calls were made in.
	Hour time.Time `json:"hour"`
	// Actor is the caller's principal id (key id, user id,
	// "oidc:<sub>"; "" for the single local user), ActorKind its kind
	// (principal.Kind…).
	Actor     string `json:"actor"`
	ActorKind string `json:"actor_kind"`
	// Upstream is the configured name of the upstream that owns the tool
	// ("" when no upstream does: a call of an unknown tool), Tool the
	// tool's name as the client called it.
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Outcome  string `json:"outcome"` // "ok" | "error" | "denied"
	Count    int64  `json:"count"`
}

// UsageFilter selects usage records; zero fields do not filter.
type UsageFilter struct {
	TenantID string
	// From and To bound Hour: From <= Hour < To.
	From, To time.Time
	Upstream string
	Tool     string
	// Limit bounds the records returned: 0 = DefaultUsageLimit, at most
	// MaxUsageLimit.
	Limit int
}

// Bounds of ListUsage.
const (
	DefaultUsageLimit = 10000
	MaxUsageLimit     = 100000
)

// Metering stores usage records.
type Metering interface {
	// AddUsageRecords adds each record's Count to the stored count of its
	// key (TenantID, Hour truncated to the hour, Actor, ActorKind,
	// Upstream, Tool, Outcome), creating it at Count if absent, all in
	// one transaction. The addition is atomic, so several processes
	// adding to the same key never lose an increment. Records of a
	// tenant that does not exist (deleted meanwhile) are skipped, so
	// that one deleted tenant can not block everyone's counts. A record
	// with Count <= 0 or an empty TenantID is invalid.
	AddUsageRecords(ctx context.Context, rs []UsageRecord) error
	// ListUsage returns the stored records matching f, by hour, then
	// tenant, upstream, tool, actor, actor kind and outcome; at most
	// f.Limit of them.
	ListUsage(ctx context.Context, f UsageFilter) ([]UsageRecord, error)
	// PruneUsage deletes the records of hours before before and returns
	// how many it deleted (the retention of [metering] retention).
	PruneUsage(ctx context.Context, before time.Time) (int64, error)
}
