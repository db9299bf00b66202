package tenancy

import (
	"context"
	"time"

	"github.com/mcpedge/mcpedge/internal/events"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/ratelimit"
)

// QuotaWarnPercent is the share of the monthly quota whose use publishes
// events.QuotaWarning.
const QuotaWarnPercent = 80

// quotaThresholds returns the events the call that brought a tenant's use
// of its monthly quota to used crosses: the 80 % mark (the first unit at
// or above it) and the last unit. Quota units are taken one at a time, so
// exactly one call crosses each mark.
func quotaThresholds(used, quota int64) []string {
	if quota <= 0 || used <= 0 {
		return nil
	}
	var out []string
	warn := (quota*QuotaWarnPercent + 99) / 100 // ceil(80 %)
	if used == warn && warn < quota {
		out = append(out, events.QuotaWarning)
	}
	if used == quota {
		out = append(out, events.QuotaExhausted)
	}
	return out
}

// quotaEvents publishes the quota events the call that was just admitted
// crossed. Their ids are derived from the tenant, month and mark, so that
// replicas counting the same quota (Redis) or seeding it again after a
// restart never send one twice: the store keeps one delivery per event id
// and endpoint.
func (l *Layer) quotaEvents(ctx context.Context, p *principal.Principal, plan ratelimit.Plan, q ratelimit.Decision, now time.Time) {
	if l.o.Events == nil {
		return
	}
	used := q.Limit - q.Remaining
	types := quotaThresholds(used, q.Limit)
	if len(types) == 0 {
		return
	}
	month := now.UTC().Format("2006-01")
	for _, typ := range types {
		e := events.Event{
			ID: events.DerivedID(typ, p.TenantID, month), Type: typ, TenantID: p.TenantID, Time: now,
			Data: map[string]any{"plan": plan.Name, "month": month, "quota": q.Limit, "used": used, "percent": used * 100 / q.Limit},
		}
		// The call goes on whatever happens to its event.
		if err := l.o.Events.Publish(context.WithoutCancel(ctx), e); err != nil {
			l.o.Log.Warn("publishing a quota event failed", "type", typ, "tenant", p.TenantID, "error", err)
		}
	}
}
