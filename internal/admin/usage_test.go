package admin

import (
	"encoding/csv"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/metering"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

func TestUsage(t *testing.T) {
	testUsage(t, newEnv(t, nil))
}

func testUsage(t *testing.T, e *env) {
	acme, beta := e.tenant("acme"), e.tenant("beta")
	acmeAdmin := e.key("acme", KeySpec{Name: "adm", Role: principal.RoleAdmin})
	acmeMember := e.key("acme", KeySpec{Name: "mem", Role: principal.RoleMember})
	betaKey := e.key("beta", KeySpec{Name: "b", Role: principal.RoleAdmin})

	// Calls made this month, counted by a meter that the report flushes.
	now := time.Now().UTC()
	thisHour := now.Truncate(time.Hour)
	m := metering.New(metering.Options{Store: e.st, Now: func() time.Time { return now }})
	e.ops.flushUsage = m.Flush
	for range 3 {
		m.Count(acmeMember, "fs", "read", "ok")
	}
	m.Count(acmeMember, "fs", "=cmd|' /C calc'!A0", "error") // a hostile tool name in a spreadsheet
	m.Count(acmeAdmin, "git", "log", "denied")
	m.Count(betaKey, "fs", "read", "ok")
	// Last month's records, straight into the store.
	lastMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Add(-24 * time.Hour)
	if err := e.st.AddUsageRecords(e.ctx, []store.UsageRecord{
		{TenantID: acme.ID, Hour: lastMonth, Actor: acmeMember.ID, ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "ok", Count: 10},
		{TenantID: acme.ID, Hour: lastMonth.Add(-time.Hour), Actor: acmeMember.ID, ActorKind: "key", Upstream: "fs", Tool: "read", Outcome: "ok", Count: 5},
	}); err != nil {
		t.Fatal(err)
	}

	// Default: the current month, hourly; the operator sees every tenant.
	r := e.do(e.root, "GET", "/api/usage", nil)
	want(t, "usage", r, 200)
	if r.body["total"] != float64(6) || r.body["granularity"] != "hour" || r.body["truncated"] != false {
		t.Fatalf("usage = %s", r.raw)
	}
	rows := r.body["rows"].([]any)
	tenants := map[string]float64{}
	for _, x := range rows {
		row := x.(map[string]any)
		tenants[row["tenant"].(string)] += row["count"].(float64)
		if row["period"] != thisHour.Format(time.RFC3339) {
			t.Errorf("row period %v, want %s", row["period"], thisHour.Format(time.RFC3339))
		}
	}
	if tenants["acme"] != 5 || tenants["beta"] != 1 {
		t.Errorf("per tenant = %v, want acme 5, beta 1", tenants)
	}
	if m.Pending() != 0 {
		t.Error("the report did not flush the meter first")
	}

	// A tenant admin sees only its tenant; another tenant is not found.
	r = e.do(acmeAdmin, "GET", "/api/usage", nil)
	want(t, "tenant admin", r, 200)
	if r.body["total"] != float64(5) {
		t.Errorf("acme admin's usage = %s", r.raw)
	}
	want(t, "another tenant", e.do(acmeAdmin, "GET", "/api/usage?tenant=beta", nil), 404, CodeNotFound)
	want(t, "member", e.do(acmeMember, "GET", "/api/usage", nil), 403, CodeForbidden)
	r = e.do(e.root, "GET", "/api/usage?tenant="+beta.ID, nil)
	want(t, "by tenant id", r, 200)
	if r.body["total"] != float64(1) {
		t.Errorf("beta's usage = %s", r.raw)
	}

	// A range over both months, by month, filtered by upstream and tool.
	from := lastMonth.Add(-48 * time.Hour).Format(time.RFC3339)
	to := thisHour.Add(time.Hour).Format(time.RFC3339)
	r = e.do(e.root, "GET", "/api/usage?tenant=acme&granularity=month&upstream=fs&tool=read&from="+from+"&to="+to, nil)
	want(t, "by month", r, 200)
	rows = r.body["rows"].([]any)
	if len(rows) != 2 || rows[0].(map[string]any)["period"] != lastMonth.Format("2006-01") || rows[0].(map[string]any)["count"] != float64(15) ||
		rows[1].(map[string]any)["period"] != now.Format("2006-01") || rows[1].(map[string]any)["count"] != float64(3) {
		t.Errorf("monthly fs/read of acme = %s", r.raw)
	}
	r = e.do(e.root, "GET", "/api/usage?tenant=acme&from="+from+"&to="+thisHour.Format(time.RFC3339), nil)
	want(t, "last month only", r, 200)
	if r.body["total"] != float64(15) || len(r.body["rows"].([]any)) != 2 {
		t.Errorf("last month hourly = %s", r.raw)
	}

	// CSV, by ?format and by Accept.
	for _, how := range []struct{ query, accept string }{{"?tenant=acme&format=csv", ""}, {"?tenant=acme", "text/csv"}} {
		req := httptest.NewRequest("GET", "/api/usage"+how.query, nil).WithContext(e.ctx)
		if how.accept != "" {
			req.Header.Set("Accept", how.accept)
		}
		r = e.send(e.root, req)
		want(t, "csv "+how.query, r, 200)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Fatalf("csv Content-Type = %q", ct)
		}
		recs, err := csv.NewReader(strings.NewReader(string(r.raw))).ReadAll()
		if err != nil {
			t.Fatalf("csv: %v\n%s", err, r.raw)
		}
		if strings.Join(recs[0], ",") != strings.Join(UsageCSVHeader, ",") || len(recs) != 4 {
			t.Fatalf("csv = %q", recs)
		}
		var sawTool bool
		for _, rec := range recs[1:] {
			if rec[1] != "acme" || rec[2] != acme.ID {
				t.Errorf("csv row %q is not acme's", rec)
			}
			if strings.Contains(rec[6], "calc") {
				sawTool = true
				if !strings.HasPrefix(rec[6], "'=") {
					t.Errorf("a formula-like tool name is not defused: %q", rec[6])
				}
			}
		}
		if !sawTool {
			t.Errorf("csv misses the error row: %q", recs)
		}
	}
	req := httptest.NewRequest("GET", "/api/usage?tenant=acme", nil).WithContext(e.ctx)
	req.Header.Set("Accept", "application/json, text/csv")
	if r = e.send(e.root, req); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Accept naming JSON answered %q", r.header.Get("Content-Type"))
	}

	for _, bad := range []string{
		"?granularity=day", "?from=yesterday", "?to=2026-01-01", "?format=xml", "?limit=3",
		"?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z", "?tool=" + strings.Repeat("x", 300),
	} {
		want(t, "bad "+bad, e.do(e.root, "GET", "/api/usage"+bad, nil), 400, CodeInvalidArgument)
	}
}
