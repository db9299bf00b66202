package admin

import (
	"cmp"
	"context"
	"encoding/csv"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Usage granularities (UsageQuery.Granularity).
const (
	GranularityHour  = "hour"
	GranularityMonth = "month"
)

// UsageQuery selects metered usage (GET /api/usage, mcpedge usage). Zero
// fields do not filter.
type UsageQuery struct {
	// Tenant is a tenant id or name. Callers who do not administer the
	// whole gateway only ever see their own tenant's usage.
	Tenant string
	// From and To bound the hours counted: From <= hour < To. Both zero:
	// the current month (UTC) so far.
	From, To time.Time
	Upstream string
	Tool     string
	// Granularity is GranularityHour (default) or GranularityMonth.
	Granularity string
}

// UsageRow is a count of tool calls in one period.
type UsageRow struct {
	// Period is the hour ("2026-12-07T10:00:00Z") or the month
	// ("2026-12") the calls were made in, UTC.
	Period     string `json:"period"`
	TenantID   string `json:"tenant_id"`
	TenantName string `json:"tenant"`
	Actor      string `json:"actor"`
	ActorKind  string `json:"actor_kind"`
	Upstream   string `json:"upstream"`
	Tool       string `json:"tool"`
	Outcome    string `json:"outcome"`
	Count      int64  `json:"count"`
}

// UsageReport is the answer of Ops.Usage.
type UsageReport struct {
	Granularity string     `json:"granularity"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	Rows        []UsageRow `json:"rows"`
	// Total is the sum of the rows' counts.
	Total int64 `json:"total"`
	// Truncated: more hourly records matched than one answer holds
	// (store.MaxUsageLimit); narrow the range or the filters.
	Truncated bool `json:"truncated"`
}

// Usage reports metered tool calls. It needs the admin role (usage says
// who called what); tenant admins see their tenant, operator admins any
// tenant or all of them. The counts this process holds in memory are
// flushed first (OpsOptions.FlushUsage), so a report shows every call this
// replica served; other replicas' counts appear after their next flush.
func (o *Ops) Usage(ctx context.Context, q UsageQuery) (_ *UsageReport, err error) {
	c := o.beginRead(ctx, "usage.list")
	defer c.end(&err)
	if err := c.need(read); err != nil {
		return nil, err
	}
	f := store.UsageFilter{Upstream: q.Upstream, Tool: q.Tool, Limit: store.MaxUsageLimit}
	names := map[string]string{}
	switch {
	case q.Tenant != "":
		t, err := c.tenant(q.Tenant, read)
		if err != nil {
			return nil, err
		}
		f.TenantID, names[t.ID] = t.ID, t.Name
	case !operatorAdmin(c.p):
		f.TenantID = c.p.TenantID
		names[c.p.TenantID] = c.p.TenantName
	}
	if !c.p.AtLeast(principal.RoleAdmin) {
		return nil, c.forbid("reading usage needs the admin role or stronger (you are %s)", c.p.Role)
	}
	switch q.Granularity {
	case "":
		q.Granularity = GranularityHour
	case GranularityHour, GranularityMonth:
	default:
		return nil, invalid("granularity must be %q or %q, got %q", GranularityHour, GranularityMonth, clip(q.Granularity))
	}
	f.From, f.To = q.From.UTC(), q.To.UTC()
	if q.From.IsZero() && q.To.IsZero() {
		now := o.now().UTC()
		f.From = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return nil, invalid("to must be after from")
	}
	if len(f.Upstream) > 256 || len(f.Tool) > 256 {
		return nil, invalid("upstream and tool must be at most 256 bytes")
	}
	if o.flushUsage != nil {
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := o.flushUsage(fctx); err != nil && ctx.Err() == nil {
			o.log.Warn("flushing usage counts before a report failed; the report misses them until the next flush", "error", err)
		}
		cancel()
	}
	recs, err := o.st.ListUsage(ctx, f)
	if err != nil {
		return nil, err
	}
	if f.TenantID == "" {
		ts, err := o.st.ListTenants(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			names[t.ID] = t.Name
		}
	}
	rep := &UsageReport{Granularity: q.Granularity, From: f.From, To: f.To, Rows: []UsageRow{}, Truncated: len(recs) >= f.Limit}
	idx := map[UsageRow]int{}
	for _, r := range recs {
		row := UsageRow{Period: period(r.Hour, q.Granularity), TenantID: r.TenantID, TenantName: names[r.TenantID], Actor: r.Actor,
			ActorKind: r.ActorKind, Upstream: r.Upstream, Tool: r.Tool, Outcome: r.Outcome}
		rep.Total += r.Count
		if i, ok := idx[row]; ok {
			rep.Rows[i].Count += r.Count
			continue
		}
		idx[row] = len(rep.Rows)
		row.Count = r.Count
		rep.Rows = append(rep.Rows, row)
	}
	// Hours sort as their RFC 3339 strings, months likewise.
	slices.SortStableFunc(rep.Rows, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Period, b.Period), strings.Compare(a.TenantName, b.TenantName), strings.Compare(a.TenantID, b.TenantID),
			strings.Compare(a.Upstream, b.Upstream), strings.Compare(a.Tool, b.Tool), strings.Compare(a.Actor, b.Actor),
			strings.Compare(a.ActorKind, b.ActorKind), strings.Compare(a.Outcome, b.Outcome))
	})
	return rep, nil
}

func period(hour time.Time, granularity string) string {
	if granularity == GranularityMonth {
		return hour.UTC().Format("2006-01")
	}
	return hour.UTC().Format(time.RFC3339)
}

// UsageCSVHeader is the first line of a usage report as CSV.
var UsageCSVHeader = []string{"period", "tenant", "tenant_id", "actor", "actor_kind", "upstream", "tool", "outcome", "count"}

// WriteUsageCSV writes the report's rows as CSV (RFC 4180) with
// UsageCSVHeader. Cells that a spreadsheet would run as a formula (a
// leading =, +, -, @, tab or carriage return: tool names come from
// upstreams) are prefixed with a single quote.
func WriteUsageCSV(w io.Writer, rep *UsageReport) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(UsageCSVHeader); err != nil {
		return err
	}
	for _, r := range rep.Rows {
		rec := []string{r.Period, r.TenantName, r.TenantID, r.Actor, r.ActorKind, r.Upstream, r.Tool, r.Outcome, strconv.FormatInt(r.Count, 10)}
		for i := range rec {
			rec[i] = csvSafe(rec[i])
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
