package console

import (
	"html"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	xhtml "golang.org/x/net/html"
)

// readAs is s as an HTML parser reads it: NUL and each byte of invalid
// UTF-8 become U+FFFD.
func readAs(s string) string {
	var b strings.Builder
	for _, r := range s { // an invalid byte ranges as RuneError, width 1
		if r == 0 {
			r = utf8.RuneError
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FuzzEscape: whatever a value holds, its escaped form has no character
// that could start or end markup or leave a quoted attribute, is valid
// UTF-8, uses only the references escapeTo writes, and reads back as the
// value.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", xss, `"'&<>`, "a\x00b", "\xff\xfe<", "&amp;", "é — ✓", "</textarea><script>", `" onmouseover="x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := escape(s)
		if strings.ContainsAny(out, "<>\"'\x00") {
			t.Fatalf("escape(%q) = %q keeps a markup character", s, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("escape(%q) = %q is not valid UTF-8", s, out)
		}
		for i := strings.IndexByte(out, '&'); i >= 0; {
			rest := out[i:]
			ok := false
			for _, ref := range []string{"&amp;", "&lt;", "&gt;", "&#34;", "&#39;"} {
				if strings.HasPrefix(rest, ref) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("escape(%q) = %q has a bare &: %q", s, out, rest)
			}
			j := strings.IndexByte(rest[1:], '&')
			if j < 0 {
				break
			}
			i += j + 1
		}
		if back := html.UnescapeString(out); back != readAs(s) {
			t.Fatalf("escape(%q) = %q reads back as %q", s, out, back)
		}
	})
}

// shape is a page's markup without its text and attribute values: the
// elements and the names of their attributes, in order.
func shape(t testing.TB, page string) []string {
	t.Helper()
	var out []string
	z := xhtml.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return out
		case xhtml.StartTagToken, xhtml.EndTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			s := tok.Type.String() + " " + tok.Data
			for _, a := range tok.Attr {
				s += " " + a.Key
			}
			out = append(out, s)
		}
	}
}

// everyPage renders each page with v in every field that comes from
// outside: names, descriptions, errors, audit entries, key names.
func everyPage(v string) map[string]string {
	me := &principal.Principal{TenantID: v, TenantName: v, Role: v, Operator: true}
	tool := viewTool(&mcp.Tool{Name: v, Title: v, Description: v, InputSchema: map[string]any{
		"type": "object", "properties": map[string]any{v: map[string]any{"type": "string", "description": v}}, "required": []any{v},
	}})
	d := pageData{
		Title: v, Me: me, CSRF: v, Error: v, Query: v,
		Ready:   &readiness{Queue: &queueHealth{Error: v}},
		Recent:  []store.AuditEntry{{Actor: v, ActorKind: v, Action: v, Target: v, Outcome: v, Detail: []byte(v)}},
		Upstrms: []upstreamRow{{Name: v, Transport: v, State: v, LastError: v, Breaker: v, LatencyMs: 1}},
		Tools:   []toolView{tool},
		Prompts: []*mcp.Prompt{{Name: v, Description: v, Arguments: []*mcp.PromptArgument{{Name: v, Required: true}}}},
		Res:     []*mcp.Resource{{Name: v, URI: v, MIMEType: v, Description: v}},
		Result:  &callResult{Tool: v, Problem: v, Texts: []string{v}, Images: []string{v}, Structured: v},
		Keys:    []keyRow{{APIKey: store.APIKey{ID: v, Name: v, Prefix: v, Role: v}, State: "active"}},
		NewKey:  v, Tenant: v, TenantLabel: v,
		Entries:  []auditRow{{AuditEntry: store.AuditEntry{Actor: v, ActorKind: v, Action: v, Target: v, Outcome: v, ClientIP: v, Time: time.Unix(1, 0)}, DetailText: v}},
		Filter:   auditFilter{Action: v, Actor: v, Outcome: "denied", Tenant: v, Since: v, Until: v},
		Verified: &audit.Report{Kind: v, Problem: v},
		NextPage: "/ui/audit?x=" + v,
	}
	d.Ready.Components = append(d.Ready.Components, struct {
		Name     string `json:"name"`
		State    string `json:"state"`
		Required bool   `json:"required"`
		Error    string `json:"error"`
	}{Name: v, State: v, Error: v})
	pages := map[string]string{}
	for _, p := range []string{"signin", "overview", "catalog", "keys", "audit", "error"} {
		var m markup
		layout(&m, &head{Title: d.Title, Nav: p, Me: d.Me, CSRF: d.CSRF, Error: d.Error}, mainOf(p, &d))
		pages[p] = m.String()
	}
	for name, main := range extraPages(v, me) {
		var m markup
		layout(&m, &head{Title: v, Nav: name, Me: me, CSRF: v, Error: v}, main)
		pages[name] = m.String()
	}
	return pages
}

// FuzzPagesKeepTheirShape renders every page with a value in every field
// that comes from outside and checks that the page parses into the same
// elements and attributes as with a plain value: no value can open or
// close an element, add an attribute, or leave a quoted one.
func FuzzPagesKeepTheirShape(f *testing.F) {
	for _, s := range []string{"x", xss, `"'&<>`, "</textarea></pre><b>", `x" onfocus="alert(1)`, "\x00\xff", "javascript:alert(1)", "<!--", "]]>"} {
		f.Add(s)
	}
	plain := map[string][]string{}
	for name, page := range everyPage("plain") {
		plain[name] = shape(f, page)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if v == "" {
			return // an empty value leaves an optional element out
		}
		for name, page := range everyPage(v) {
			if got := shape(t, page); !slices.Equal(got, plain[name]) {
				t.Fatalf("page %s with %q has another shape:\n%s", name, v, page)
			}
		}
	})
}

func TestHrefTakesOnlyTheConsolesOwnURLs(t *testing.T) {
	for u, want := range map[string]bool{
		"/ui/keys":                       true,
		"/ui/audit?x=%3Cscript%3E":       true,
		"data:image/png;base64,iVBORw0K": true,
		"//evil.example/x":               false,
		`/\evil.example`:                 false,
		"javascript:alert(1)":            false,
		"JaVaScRiPt:alert(1)":            false,
		"https://evil.example/":          false,
		"data:image/svg+xml;base64,PHN2": false,
		"data:text/html,<script>":        false,
		"":                               false,
	} {
		var m markup
		m.href("href", u)
		wantOut := ` href="#"`
		if want {
			wantOut = ` href="` + escape(u) + `"`
		}
		if m.String() != wantOut {
			t.Errorf("href(%q) = %s, want %s", u, m.String(), wantOut)
		}
	}
}

// extraPages are the pages not rendered from pageData, each with v in
// every field that comes from outside.
func extraPages(v string, me *principal.Principal) map[string]func(*markup) {
	tn := store.Tenant{ID: v, Name: v, Plan: v, IPAllowlist: []string{v}}
	plans := []admin.PlanInfo{{Plan: store.Plan{Name: v}, Source: admin.PlanFromStore}}
	tc := tenantChoice{Current: v, Label: v, All: []store.Tenant{tn}}
	pin := &admin.PinInfo{Upstream: v, Kind: v, Name: v, State: v, Hash: v, OfferedHash: v, Definition: []byte(`{"a":1}`),
		Diff: "--- pinned\n+++ offered\n-" + strings.ReplaceAll(v, "\n", " ") + "\n+" + strings.ReplaceAll(v, "\n", " ") + "\n"}
	gv := &store.GuardVerdict{Upstream: v, Kind: v, Name: v, Hash: v, Rules: []string{v}, RulesVersion: v, Text: v, State: store.VerdictQuarantined}
	return map[string]func(*markup){
		"tenants": func(m *markup) {
			tenantsMain(m, &tenantsData{CSRF: v, Flash: v, Operator: true, Owner: true, Admin: true, Tenants: []store.Tenant{tn}, Plans: plans})
		},
		"users": func(m *markup) {
			usersMain(m, &usersData{CSRF: v, Flash: v, Tenant: tc, Users: []store.User{{ID: v, Name: v, Role: v}}})
		},
		"plans": func(m *markup) { plansMain(m, &plansData{CSRF: v, Flash: v, Operator: true, Plans: plans}) },
		"servers": func(m *markup) {
			serversMain(m, &serversData{CSRF: v, Flash: v, Tenant: tc, Operator: true, Servers: []store.VirtualServer{{ID: v, Name: v, Upstreams: []string{v}, Tools: []string{v}}}})
		},
		"rules": func(m *markup) {
			rulesMain(m, &rulesData{CSRF: v, Flash: v, Tenant: tc, Rules: []store.Rule{{ID: v, Tool: v, Effect: v, Roles: []string{v}, Scopes: []string{v}}}})
		},
		"pins": func(m *markup) {
			pinsMain(m, &pinsData{CSRF: v, Flash: v, State: v, Pins: []admin.PinInfo{*pin}, Quarantine: []store.GuardVerdict{*gv}})
		},
		"pin": func(m *markup) { pinViewMain(m, &pinView{CSRF: v, Pin: pin}) },
		"queue": func(m *markup) {
			now := time.Unix(5, 0)
			queueMain(m, &queueData{CSRF: v, Flash: v, State: v, Next: "/ui/queue?after=" + v, Entries: []admin.QueuedCall{{ID: v, State: "failed", Target: v, Tool: v, LastError: v, NextAttempt: &now, DoneAt: &now}}})
		},
		"lattices": func(m *markup) {
			latticesMain(m, &latticesData{CSRF: v, Flash: v, Limit: 3, Lattices: []latticesvc.Info{{ID: v, Name: v, Dims: []int64{2, 2}, Boundary: v}}})
		},
		"lattice": func(m *markup) {
			latticeViewMain(m, &latticeView{CSRF: v, From: v, To: v, Info: latticesvc.Info{ID: v, Name: v, Dims: []int64{3, 3}, Boundary: v,
				Blocked: &latticesvc.BlockedSet{Cells: [][]int64{{1, 1}}}},
				Result: &latticesvc.PathResult{Reachable: true, Length: 4, Path: [][]int64{{0, 0}, {0, 1}, {0, 2}, {1, 2}, {2, 2}}, PathOmitted: v, Algorithm: v,
					Memory: latticesvc.MemoryJSON{CatalyticNote: v}}})
		},
		"devices": func(m *markup) {
			depth := int64(3)
			devicesMain(m, &devicesData{CSRF: v, Flash: v, Operator: true, Devices: []hub.DeviceView{{
				Device:     store.Device{ID: v, Name: v, Kind: "tpm", PCRPolicy: v, LastAddr: v, Refusal: v},
				TenantName: v, QueueDepth: &depth}}})
		},
		"verdict": func(m *markup) { verdictViewMain(m, &verdictView{CSRF: v, Verdict: gv}) },
	}
}
