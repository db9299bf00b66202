package console

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

func TestAuditExportAsCSVAndJSON(t *testing.T) {
	e := newEnv(t)
	acme := mustTenant(t, e, "acme")
	ops := mustTenant(t, e, "ops")
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: acme.ID, Actor: "=HYPERLINK(\"http://evil\")", ActorKind: "key", Action: "tool.call", Target: "ev__echo", Outcome: "ok", Detail: []byte(`{"x":"<b>"}`)})
	e.audit.Record(e.ctx, &store.AuditEntry{TenantID: ops.ID, Actor: "secret-actor", ActorKind: "key", Action: "tool.call", Outcome: "denied"})
	b := e.browser()
	b.signIn(e.acmeK)
	page := b.get("/ui/audit?since=")
	if !strings.Contains(page.body, `href="/ui/audit/export?format=csv&amp;since="`) {
		t.Fatalf("no export link:\n%s", page.body)
	}
	p := b.get("/ui/audit/export?format=csv&since=&action=tool.")
	if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/csv") || !strings.Contains(p.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", p.status, p.header)
	}
	rows, err := csv.NewReader(strings.NewReader(p.body)).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, p.body)
	}
	if len(rows) != 2 || rows[0][0] != "seq" || rows[1][5] != "tool.call" {
		t.Fatalf("csv rows (acme sees its own entry only): %q", rows)
	}
	if rows[1][4] != `'=HYPERLINK("http://evil")` {
		t.Fatalf("a formula in a cell is not made inert: %q", rows[1][4])
	}
	if strings.Contains(p.body, "secret-actor") {
		t.Fatal("the export holds another tenant's entry")
	}
	j := b.get("/ui/audit/export?format=json&since=")
	var doc struct {
		Entries []struct {
			Seq    int64           `json:"seq"`
			Actor  string          `json:"actor"`
			Action string          `json:"action"`
			Detail json.RawMessage `json:"detail"`
			Hash   []byte          `json:"hash"`
		} `json:"entries"`
		Truncated bool `json:"truncated"`
	}
	if err := json.Unmarshal([]byte(j.body), &doc); err != nil || j.header.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %v %v\n%s", err, j.header, j.body)
	}
	var found bool
	for _, en := range doc.Entries {
		if en.Actor == "secret-actor" {
			t.Fatal("the JSON export holds another tenant's entry")
		}
		if en.Action == "tool.call" {
			found = true
			if string(en.Detail) != `{"x":"<b>"}` || len(en.Hash) != 32 {
				t.Fatalf("the entry is not verbatim: %s %x", en.Detail, en.Hash)
			}
		}
	}
	if !found || doc.Truncated {
		t.Fatalf("json export: %+v", doc)
	}
	// Refusals come back as pages, not as broken downloads.
	if p := b.get("/ui/audit/export?format=csv&tenant=ops&since="); p.status != http.StatusNotFound || strings.Contains(p.body, "secret-actor") {
		t.Fatalf("another tenant's export: %d", p.status)
	}
	if p := b.get("/ui/audit/export?format=xml"); p.status != http.StatusBadRequest {
		t.Fatalf("bad format: %d", p.status)
	}
	if p := b.get("/ui/audit/export?format=csv&until=yesterday"); p.status != http.StatusBadRequest {
		t.Fatalf("bad until: %d", p.status)
	}
	// The operator's export holds both tenants.
	op := e.browser()
	op.signIn(e.rootK)
	if p := op.get("/ui/audit/export?format=csv&since=&outcome=denied"); !strings.Contains(p.body, "secret-actor") || strings.Contains(p.body, "HYPERLINK") {
		t.Fatalf("operator's filtered export:\n%s", p.body)
	}
}
