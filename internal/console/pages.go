package console

import (
	"strconv"

	"github.com/mcpedge/mcpedge/internal/principal"
)

// head is what the layout around every page needs.
type head struct {
	Title string
	Nav   string // the navigation entry marked current
	Me    *principal.Principal
	CSRF  string
	Error string
}

// navEntries are the layout's navigation: path, nav name, label, and
// whether only administrators of an operator tenant see it.
type navEntry struct {
	path, nav, label string
	operator         bool
}

func navEntries() []navEntry {
	return []navEntry{
		{"/ui/", "overview", "Overview", false},
		{"/ui/catalog", "catalog", "Catalog", false},
		{"/ui/tenants", "tenants", "Tenants", false},
		{"/ui/users", "users", "Users", false},
		{"/ui/keys", "keys", "Keys", false},
		{"/ui/plans", "plans", "Plans", false},
		{"/ui/servers", "servers", "Virtual servers", false},
		{"/ui/rules", "rules", "Rules", false},
		{"/ui/queue", "queue", "Queue", false},
		{"/ui/devices", "devices", "Devices", false},
		{"/ui/lattices", "lattices", "Lattices", false},
		{"/ui/pins", "pins", "Pins", true},
		{"/ui/audit", "audit", "Audit", false},
	}
}

// layout writes the document around main.
func layout(m *markup, h *head, main func(*markup)) {
	m.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>")
	m.text(h.Title)
	m.raw(" · mcpedge</title>\n<link rel=\"stylesheet\" href=\"/ui/static/console.css\">\n</head>\n<body>\n",
		"<a class=\"skip\" href=\"#main\">Skip to content</a>\n<header>\n<span class=\"brand\">mcpedge</span>\n")
	if h.Me != nil {
		m.raw("<nav aria-label=\"Console\">\n")
		for _, n := range navEntries() {
			if n.operator && !h.Me.Operator {
				continue
			}
			m.raw("<a")
			m.href("href", n.path)
			m.flag(`aria-current="page"`, h.Nav == n.nav)
			m.raw(">", n.label, "</a>\n")
		}
		m.raw("</nav>\n<form class=\"who\" method=\"post\" action=\"/ui/signout\">\n<span id=\"who\">")
		m.text(h.Me.TenantName)
		m.raw(" · ")
		m.text(h.Me.Role)
		if h.Me.Operator {
			m.raw(" · operator")
		}
		m.raw("</span>\n")
		m.hidden("csrf", h.CSRF)
		m.raw("\n<button type=\"submit\">Sign out</button>\n</form>\n")
	}
	m.raw("</header>\n<main id=\"main\">\n<h1>")
	m.text(h.Title)
	m.raw("</h1>\n")
	if h.Error != "" {
		m.raw(`<p class="error" role="alert" id="error">`)
		m.text(h.Error)
		m.raw("</p>\n")
	}
	if main != nil {
		main(m)
	}
	m.raw("\n</main>\n</body>\n</html>\n")
}

// ---- the first slice's pages: sign-in, overview, catalog, keys, audit

// mainOf returns the body of one of the pages rendered from pageData.
func mainOf(page string, d *pageData) func(*markup) {
	switch page {
	case "signin":
		return func(m *markup) { signinMain(m, d) }
	case "overview":
		return func(m *markup) { overviewMain(m, d) }
	case "catalog":
		return func(m *markup) { catalogMain(m, d) }
	case "keys":
		return func(m *markup) { keysMain(m, d) }
	case "audit":
		return func(m *markup) { auditMain(m, d) }
	}
	return errorMain
}

func errorMain(m *markup) { m.raw(`<p><a href="/ui/">Back to the console</a></p>`) }

func signinMain(m *markup, d *pageData) {
	m.raw("<form method=\"post\" action=\"/ui/signin\" class=\"card\" id=\"key-signin\">\n<h2>With an API key</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.raw("\n<label for=\"key\">API key</label>\n<input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required>\n",
		"<button type=\"submit\">Sign in</button>\n</form>\n",
		"<form method=\"post\" action=\"/ui/signin\" class=\"card\" id=\"password-signin\">\n<h2>With a password</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.raw("\n<label for=\"tenant\">Tenant</label>\n<input id=\"tenant\" name=\"tenant\" autocomplete=\"organization\" required>\n",
		"<label for=\"user\">User</label>\n<input id=\"user\" name=\"user\" autocomplete=\"username\" required>\n",
		"<label for=\"password\">Password</label>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n",
		"<button type=\"submit\">Sign in</button>\n</form>\n")
}

// stateCell writes a table cell classed by a state ("state-up" …).
func stateCell(m *markup, state string) {
	m.raw("<td")
	m.attr("class", "state-"+state)
	m.raw(">")
	m.text(state)
	m.raw("</td>")
}

func cell(m *markup, s string) {
	m.raw("<td>")
	m.text(s)
	m.raw("</td>")
}

func codeCell(m *markup, s string) {
	m.raw("<td><code>")
	m.text(s)
	m.raw("</code></td>")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// theadRow writes a table head of column names.
func theadRow(m *markup, cols ...string) {
	m.raw("<thead><tr>")
	for _, c := range cols {
		m.raw(`<th scope="col">`, c, "</th>")
	}
	m.raw("</tr></thead>\n")
}

func overviewMain(m *markup, d *pageData) {
	if rd := d.Ready; rd != nil {
		m.raw("<section aria-labelledby=\"ready-h\">\n<h2 id=\"ready-h\">Readiness: ")
		if rd.Ready {
			m.raw(`<span id="ready" class="ok">ready</span>`)
		} else {
			m.raw(`<span id="ready" class="bad">not ready</span>`)
		}
		m.raw("</h2>\n<table>\n<caption>Components</caption>\n")
		theadRow(m, "Component", "State", "Required", "Error")
		m.raw("<tbody>\n")
		for _, c := range rd.Components {
			m.raw("<tr>")
			cell(m, c.Name)
			stateCell(m, c.State)
			cell(m, yesNo(c.Required))
			cell(m, c.Error)
			m.raw("</tr>\n")
		}
		m.raw("</tbody>\n</table>\n</section>\n")
	}
	if rd := d.Ready; rd != nil && rd.Queue != nil {
		qh := rd.Queue
		m.raw("<section aria-labelledby=\"queue-h\">\n<h2 id=\"queue-h\">Offline queue</h2>\n<p id=\"queue-health\">")
		if !qh.Open {
			m.raw("Not open: ")
			m.text(qh.Error)
		} else {
			m.int(qh.Waiting)
			m.raw(" calls waiting")
			if qh.OldestWaitingSeconds > 0 {
				m.raw(" (the oldest for ")
				m.text(strconv.FormatFloat(qh.OldestWaitingSeconds, 'f', 0, 64))
				m.raw(" s)")
			}
			m.raw("; ")
			m.int(qh.Entries)
			if qh.MaxEntries > 0 {
				m.raw(" of ")
				m.int(qh.MaxEntries)
			}
			m.raw(" entries, ")
			m.text(bytesText(qh.Bytes))
			if qh.MaxBytes > 0 {
				m.raw(" of ")
				m.text(bytesText(qh.MaxBytes))
			}
			m.raw(".")
			if qh.NearFull {
				m.raw(` <strong class="bad">Nearly full: new calls will soon be refused.</strong>`)
			}
		}
		m.raw("</p>\n</section>\n")
	}
	m.raw("<section aria-labelledby=\"up-h\">\n<h2 id=\"up-h\">Upstreams</h2>\n")
	if len(d.Upstrms) > 0 {
		m.raw("<table id=\"upstreams\">\n")
		theadRow(m, "Name", "Transport", "State", "Tools", "Breaker", "Latency", "Since", "Last error")
		m.raw("<tbody>\n")
		for _, u := range d.Upstrms {
			m.raw("<tr>")
			cell(m, u.Name)
			cell(m, u.Transport)
			stateCell(m, u.State)
			cell(m, strconv.Itoa(u.Tools))
			cell(m, u.Breaker)
			lat := ""
			if u.LatencyMs != 0 {
				lat = strconv.FormatFloat(u.LatencyMs, 'f', 1, 64) + " ms"
			}
			cell(m, lat)
			cell(m, when(u.Since))
			cell(m, u.LastError)
			m.raw("</tr>\n")
		}
		m.raw("</tbody>\n</table>\n")
	} else {
		m.raw("<p>No upstream details: they are shown to administrators of an operator tenant")
		if d.Me != nil && d.Me.Operator {
			m.raw(", and none is configured")
		}
		m.raw(".</p>\n")
	}
	m.raw("</section>\n")
	if d.Me != nil && d.Me.AtLeast(principal.RoleAdmin) {
		m.raw("<section aria-labelledby=\"recent-h\">\n<h2 id=\"recent-h\">Recent errors</h2>\n<table id=\"recent\">\n<caption>Refused or failed actions of the last 15 minutes, newest last")
		if d.RecentCut {
			m.raw(" (of the first 5,000 entries: open the audit log for more)")
		}
		m.raw("</caption>\n")
		theadRow(m, "Time", "Actor", "Action", "Target", "Outcome", "Detail")
		m.raw("<tbody>\n")
		for _, e := range d.Recent {
			m.raw("<tr>")
			cell(m, when(e.Time))
			cell(m, e.ActorKind+":"+e.Actor)
			cell(m, e.Action)
			cell(m, e.Target)
			stateCell(m, e.Outcome)
			m.raw(`<td><code class="detail">`)
			m.text(string(e.Detail))
			m.raw("</code></td></tr>\n")
		}
		if len(d.Recent) == 0 {
			m.raw("<tr><td colspan=\"6\">None.</td></tr>\n")
		}
		m.raw("</tbody>\n</table>\n</section>\n")
	}
}

func catalogMain(m *markup, d *pageData) {
	m.raw("<form method=\"get\" action=\"/ui/catalog\" class=\"search\" role=\"search\">\n<label for=\"q\">Search</label>\n<input id=\"q\" name=\"q\"")
	m.attr("value", d.Query)
	m.raw(" type=\"search\">\n<button type=\"submit\">Search</button>\n</form>\n")
	if res := d.Result; res != nil {
		cls := "card ok"
		if res.IsError || res.Problem != "" {
			cls = "card bad"
		}
		m.raw(`<section id="result" aria-labelledby="result-h"`)
		m.attr("class", cls)
		m.raw(">\n<h2 id=\"result-h\">Result of ")
		m.text(res.Tool)
		if res.IsError {
			m.raw(" (the tool reported an error)")
		}
		m.raw("</h2>\n")
		if res.Arguments != "" {
			m.raw(`<p>Arguments: <code id="sent">`)
			m.text(res.Arguments)
			m.raw("</code></p>\n")
		}
		if res.Problem != "" {
			m.raw(`<p class="error" role="alert">`)
			m.text(res.Problem)
			m.raw("</p>\n")
		}
		for _, t := range res.Texts {
			m.raw(`<pre class="out">`)
			m.text(t)
			m.raw("</pre>\n")
		}
		for _, src := range res.Images {
			m.raw("<img")
			m.href("src", src)
			m.raw(` alt="An image the tool returned">`)
		}
		if res.Structured != "" {
			m.raw(`<h3>Structured content</h3><pre class="out">`)
			m.text(res.Structured)
			m.raw("</pre>\n")
		}
		m.raw("</section>\n")
	}
	m.raw("<section aria-labelledby=\"tools-h\">\n<h2 id=\"tools-h\">Tools (")
	m.int(int64(len(d.Tools)))
	m.raw(")</h2>\n")
	for i := range d.Tools {
		toolCard(m, d, &d.Tools[i])
	}
	if len(d.Tools) == 0 {
		if d.Query != "" {
			m.raw("<p>No tool matches.</p>\n")
		} else {
			m.raw("<p>No tool.</p>\n")
		}
	}
	m.raw("</section>\n<section aria-labelledby=\"prompts-h\">\n<h2 id=\"prompts-h\">Prompts (")
	m.int(int64(len(d.Prompts)))
	m.raw(")</h2>\n")
	if len(d.Prompts) > 0 {
		m.raw("<table>")
		theadRow(m, "Name", "Arguments", "Description")
		m.raw("<tbody>\n")
		for _, p := range d.Prompts {
			m.raw("<tr>")
			codeCell(m, p.Name)
			m.raw("<td>")
			for _, a := range p.Arguments {
				m.raw("<code>")
				m.text(a.Name)
				m.raw("</code>")
				if a.Required {
					m.raw("*")
				}
				m.raw(" ")
			}
			m.raw("</td>")
			cell(m, p.Description)
			m.raw("</tr>\n")
		}
		m.raw("</tbody></table>")
	} else {
		m.raw("<p>None.</p>")
	}
	m.raw("\n</section>\n<section aria-labelledby=\"res-h\">\n<h2 id=\"res-h\">Resources (")
	m.int(int64(len(d.Res)))
	m.raw(")</h2>\n")
	if len(d.Res) > 0 {
		m.raw("<table>")
		theadRow(m, "Name", "URI", "Type", "Description")
		m.raw("<tbody>\n")
		for _, r := range d.Res {
			m.raw("<tr>")
			cell(m, r.Name)
			codeCell(m, r.URI)
			cell(m, r.MIMEType)
			cell(m, r.Description)
			m.raw("</tr>\n")
		}
		m.raw("</tbody></table>")
	} else {
		m.raw("<p>None.</p>")
	}
	m.raw("\n</section>\n")
}

func keysMain(m *markup, d *pageData) {
	if d.NewKey != "" {
		m.raw("<section class=\"card ok\" role=\"status\" aria-labelledby=\"newkey-h\">\n<h2 id=\"newkey-h\">New key</h2>\n",
			"<p>Copy it now: it is shown only this once. (A rotated key keeps working for the configured overlap.)</p>\n",
			"<p><code id=\"new-key\" class=\"secret\">")
		m.text(d.NewKey)
		m.raw("</code></p>\n</section>\n")
	}
	m.raw("<table id=\"keys\">\n<caption>Keys of tenant <code>")
	m.text(d.TenantLabel)
	m.raw("</code></caption>\n")
	theadRow(m, "Name", "Prefix", "Role", "State", "Created", "Last used", "Expires", "Scopes", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, k := range d.Keys {
		m.raw("<tr")
		m.attr("data-key", k.Prefix)
		m.raw(">")
		cell(m, k.Name)
		codeCell(m, k.Prefix)
		cell(m, k.Role)
		stateCell(m, k.State)
		cell(m, when(k.CreatedAt))
		cell(m, when(k.LastUsedAt))
		cell(m, when(k.ExpiresAt))
		cell(m, orEveryone(k.Scopes))
		m.raw("\n<td>")
		if k.State == "active" {
			label := k.Name + " (" + k.Prefix + ")"
			actionForm(m, d.CSRF, "/ui/keys/rotate", "Rotate", "Rotate key "+label, "tenant", d.Tenant, "id", k.ID)
			m.raw("\n")
			actionForm(m, d.CSRF, "/ui/keys/revoke", "Revoke", "Revoke key "+label, "tenant", d.Tenant, "id", k.ID)
		}
		m.raw("</td></tr>\n")
	}
	if len(d.Keys) == 0 {
		m.raw("<tr><td colspan=\"9\">No keys.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<form method=\"post\" action=\"/ui/keys\" class=\"card\" id=\"create-key\">\n<h2>Create a key</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("tenant", d.Tenant)
	m.raw("\n<label for=\"key-name\">Name</label>\n<input id=\"key-name\" name=\"name\" required maxlength=\"128\">\n<label for=\"key-role\">Role</label>\n")
	roleSelect(m, "key-role", "role", principal.RoleMember)
	m.raw("\n<label for=\"key-scopes\">Scopes (comma-separated, e.g. mcp:call, admin:read; empty: all the role allows)</label>\n<input id=\"key-scopes\" name=\"scopes\">",
		"\n<label for=\"key-expiry\">Expires in (e.g. 30d, 720h; empty: never)</label>\n<input id=\"key-expiry\" name=\"expires_in\">\n",
		"<button type=\"submit\">Create key</button>\n</form>\n")
}

// roleSelect writes a <select> of the roles, with selected chosen.
func roleSelect(m *markup, id, name, selected string) {
	m.raw("<select")
	m.attr("id", id)
	m.attr("name", name)
	m.raw(">")
	for _, r := range []string{principal.RoleMember, principal.RoleViewer, principal.RoleAdmin, principal.RoleOwner} {
		m.raw("<option")
		m.attr("value", r)
		m.flag("selected", r == selected)
		m.raw(">")
		m.text(r)
		m.raw("</option>")
	}
	m.raw("</select>")
}

// actionForm writes a one-button form posting the CSRF token and the
// given name/value pairs to action.
func actionForm(m *markup, csrf, action, button, label string, fields ...string) {
	m.raw(`<form method="post" class="inline"`)
	m.href("action", action)
	m.raw(">")
	m.hidden("csrf", csrf)
	for i := 0; i+1 < len(fields); i += 2 {
		m.hidden(fields[i], fields[i+1])
	}
	m.raw(`<button type="submit"`)
	m.attr("aria-label", label)
	m.raw(">")
	m.text(button)
	m.raw("</button></form>")
}

func auditMain(m *markup, d *pageData) {
	f := d.Filter
	operator := d.Me != nil && d.Me.Operator
	m.raw("<form method=\"get\" action=\"/ui/audit\" class=\"filters\" role=\"search\">\n")
	textInput(m, "f-action", "action", "Action (exact, or a prefix such as key.)", f.Action)
	textInput(m, "f-actor", "actor", "Actor", f.Actor)
	m.raw("<label for=\"f-outcome\">Outcome</label>\n<select id=\"f-outcome\" name=\"outcome\">\n")
	for _, o := range []struct{ v, l string }{{"", "any"}, {"ok", "ok"}, {"denied", "denied"}, {"error", "error"}} {
		m.raw("<option")
		m.attr("value", o.v)
		m.flag("selected", f.Outcome == o.v)
		m.raw(">", o.l, "</option>\n")
	}
	m.raw("</select>\n")
	if operator {
		textInput(m, "f-tenant", "tenant", "Tenant", f.Tenant)
	}
	m.raw("<label for=\"f-since\">Since (UTC)</label>\n<input id=\"f-since\" name=\"since\" type=\"datetime-local\"")
	m.attr("value", f.Since)
	m.raw(">\n<label for=\"f-until\">Until (UTC)</label>\n<input id=\"f-until\" name=\"until\" type=\"datetime-local\"")
	m.attr("value", f.Until)
	m.raw(">\n<button type=\"submit\">Filter</button>\n</form>\n")
	m.raw("<p class=\"export\">Export these entries: <a")
	m.href("href", auditExportURL(f, "csv"))
	m.raw(` download>CSV</a> · <a`)
	m.href("href", auditExportURL(f, "json"))
	m.raw(" download>JSON</a></p>\n")
	if operator {
		m.raw("<form method=\"post\" action=\"/ui/audit/verify\" class=\"inline\">\n")
		m.hidden("csrf", d.CSRF)
		m.raw("\n<button type=\"submit\">Verify the chain</button>\n</form>\n")
	}
	if rep := d.Verified; rep != nil {
		if rep.OK {
			m.raw(`<p id="verified" role="status" class="ok">The chain is intact: `)
			m.int(rep.Entries)
			m.raw(" entries, head at ")
			m.int(rep.Head.Seq)
			m.raw(".</p>\n")
		} else {
			m.raw(`<p id="verified" role="status" class="bad">The chain is damaged at entry `)
			m.int(rep.FirstBad)
			m.raw(" (")
			m.text(rep.Kind)
			m.raw("): ")
			m.text(rep.Problem)
			m.raw("</p>\n")
		}
	}
	m.raw("<table id=\"audit\">\n<caption>Entries in chain order")
	if f.Outcome != "" {
		m.raw(", outcome ")
		m.text(f.Outcome)
		m.raw(" (of each page read)")
	}
	m.raw("</caption>\n")
	theadRow(m, "Seq", "Time", "Actor", "Action", "Target", "Outcome", "Client", "Detail")
	m.raw("<tbody>\n")
	for _, e := range d.Entries {
		m.raw("<tr>")
		cell(m, strconv.FormatInt(e.Seq, 10))
		cell(m, when(e.Time))
		cell(m, e.ActorKind+":"+e.Actor)
		cell(m, e.Action)
		cell(m, e.Target)
		stateCell(m, e.Outcome)
		cell(m, e.ClientIP)
		m.raw(`<td><code class="detail">`)
		m.text(e.DetailText)
		m.raw("</code></td></tr>\n")
	}
	if len(d.Entries) == 0 {
		m.raw("<tr><td colspan=\"8\">No entries.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
	if d.NextPage != "" {
		m.raw("<p><a")
		m.href("href", d.NextPage)
		m.raw(">Next page</a></p>\n")
	}
}

// textInput writes a label and a text input.
func textInput(m *markup, id, name, label, value string) {
	m.raw("<label")
	m.attr("for", id)
	m.raw(">")
	m.text(label)
	m.raw("</label>\n<input")
	m.attr("id", id)
	m.attr("name", name)
	m.attr("value", value)
	m.raw(">\n")
}

// toolCard writes one tool of the catalog with its try-it form.
func toolCard(m *markup, d *pageData, t *toolView) {
	m.raw(`<article class="card tool"`)
	m.attr("id", "tool-"+t.Name)
	m.raw(">\n<h3><code>")
	m.text(t.Name)
	m.raw("</code>")
	if t.Title != "" {
		m.raw(" · ")
		m.text(t.Title)
	}
	m.raw("</h3>\n<p class=\"desc\">")
	m.text(t.Description)
	m.raw("</p>\n")
	if len(t.Params) > 0 {
		m.raw("<table>\n<caption>Arguments</caption>\n")
		theadRow(m, "Name", "Type", "Required", "Description")
		m.raw("<tbody>")
		for _, p := range t.Params {
			m.raw("<tr>")
			codeCell(m, p.Name)
			cell(m, p.Type)
			cell(m, yesNo(p.Required))
			cell(m, p.Description)
			m.raw("</tr>")
		}
		m.raw("</tbody>\n</table>\n")
	}
	m.raw("<details><summary>Input schema</summary><pre>")
	m.text(t.Schema)
	m.raw("</pre></details>\n<form method=\"post\" action=\"/ui/catalog/call\" class=\"try\">\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("tool", t.Name)
	m.raw("\n")
	argFields(m, t)
	m.raw("<label")
	m.attr("for", "args-"+t.Name)
	m.raw(">Arguments as JSON for ")
	m.text(t.Name)
	m.raw("</label>\n<textarea")
	m.attr("id", "args-"+t.Name)
	m.raw(` name="arguments" rows="4" spellcheck="false">`)
	m.text(t.Example)
	m.raw("</textarea>\n<button type=\"submit\">Call ")
	m.text(t.Name)
	m.raw("</button>\n</form>\n</article>\n")
}
