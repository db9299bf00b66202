package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/store"
)

// The pins and quarantine view (operator admins, like the API): tool,
// prompt and template definitions pinned on first sight, a changed one
// shown as a diff to approve or reject, and the items the description
// guard withheld, with the text it judged.

type pinsData struct {
	CSRF, Flash string
	State       string // the pins shown: "" (all), pinned, pending, rejected
	Pins        []admin.PinInfo
	Quarantine  []store.GuardVerdict
}

func (c *Console) pins(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := pinsData{CSRF: v.s.csrf, Flash: c.takeFlash(v), State: r.URL.Query().Get("state")}
	hd := &head{Title: "Pins and quarantine", Nav: "pins", Me: v.p, CSRF: v.s.csrf}
	ps, err := c.o.Ops.ListPins(v.ctx, "", d.State)
	if err == nil {
		d.Pins = ps
		d.Quarantine, err = c.o.Ops.ListQuarantine(v.ctx, "", "")
	}
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	c.write(w, status, hd, func(m *markup) { pinsMain(m, &d) })
}

// itemQuery names one item in a URL.
func itemQuery(upstream, kind, name string) string {
	return url.Values{"upstream": {upstream}, "kind": {kind}, "name": {name}}.Encode()
}

func pinsMain(m *markup, d *pinsData) {
	flashNote(m, d.Flash)
	m.raw("<form method=\"get\" action=\"/ui/pins\" class=\"filters\" role=\"search\">\n<label for=\"pin-state\">Pins in state</label>\n<select id=\"pin-state\" name=\"state\">")
	for _, s := range []struct{ v, l string }{{"", "any"}, {admin.PinStatePending, "pending (a change awaits review)"}, {admin.PinStatePinned, "pinned"}, {admin.PinStateRejected, "rejected"}} {
		m.raw("<option")
		m.attr("value", s.v)
		m.flag("selected", d.State == s.v)
		m.raw(">", s.l, "</option>")
	}
	m.raw("</select>\n<button type=\"submit\">Show</button>\n</form>\n<table id=\"pins\">\n<caption>Pinned definitions</caption>\n")
	theadRow(m, "Upstream", "Kind", "Name", "State", "Pinned", "Change offered", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, p := range d.Pins {
		m.raw("<tr")
		m.attr("data-pin", p.Upstream+"/"+p.Kind+"/"+p.Name)
		m.raw(">")
		cell(m, p.Upstream)
		cell(m, p.Kind)
		codeCell(m, p.Name)
		stateCell(m, p.State)
		cell(m, when(p.PinnedAt))
		cell(m, when(p.OfferedAt))
		m.raw("<td>")
		if p.OfferedHash != "" {
			m.raw("<a")
			m.href("href", "/ui/pins/view?"+itemQuery(p.Upstream, p.Kind, p.Name))
			m.attr("aria-label", "Review the change of "+p.Name)
			m.raw(">Review</a>")
		}
		m.raw("</td></tr>\n")
	}
	if len(d.Pins) == 0 {
		m.raw("<tr><td colspan=\"7\">No pins.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<table id=\"quarantine\">\n<caption>Withheld by the description guard</caption>\n")
	theadRow(m, "Upstream", "Kind", "Name", "State", "Rules", "Seen", "Decided", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, q := range d.Quarantine {
		m.raw("<tr")
		m.attr("data-verdict", q.Upstream+"/"+q.Kind+"/"+q.Name)
		m.raw(">")
		cell(m, q.Upstream)
		cell(m, q.Kind)
		codeCell(m, q.Name)
		stateCell(m, q.State)
		cell(m, strings.Join(q.Rules, ", "))
		cell(m, when(q.SeenAt))
		cell(m, when(q.DecidedAt))
		m.raw("<td><a")
		m.href("href", "/ui/guard/view?"+itemQuery(q.Upstream, q.Kind, q.Name))
		m.attr("aria-label", "Review "+q.Name)
		m.raw(">Review</a></td></tr>\n")
	}
	if len(d.Quarantine) == 0 {
		m.raw("<tr><td colspan=\"8\">Nothing withheld.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
}

// decisionForms writes approve and reject buttons for one reviewed item:
// the hash is what the operator saw, so a newer change is not approved
// by mistake (the API answers 409).
func decisionForms(m *markup, csrf, base, upstream, kind, name, hash string) {
	m.raw(`<div class="decide">`)
	actionForm(m, csrf, base+"/approve", "Approve", "Approve "+name, "upstream", upstream, "kind", kind, "name", name, "hash", hash)
	m.raw(" ")
	actionForm(m, csrf, base+"/reject", "Reject", "Reject "+name, "upstream", upstream, "kind", kind, "name", name, "hash", hash)
	m.raw("</div>\n")
}

type pinView struct {
	CSRF string
	Pin  *admin.PinInfo
}

func (c *Console) pinView(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	hd := &head{Title: "A pinned definition", Nav: "pins", Me: v.p, CSRF: v.s.csrf}
	p, err := c.o.Ops.GetPin(v.ctx, q.Get("upstream"), q.Get("kind"), q.Get("name"))
	if err != nil {
		c.refuse(w, v, hd.Title, "/ui/pins", err)
		return
	}
	d := pinView{CSRF: v.s.csrf, Pin: p}
	c.write(w, http.StatusOK, hd, func(m *markup) { pinViewMain(m, &d) })
}

func pinViewMain(m *markup, d *pinView) {
	p := d.Pin
	m.raw("<p>")
	m.text(p.Kind)
	m.raw(" <code>")
	m.text(p.Name)
	m.raw("</code> of upstream <code>")
	m.text(p.Upstream)
	m.raw("</code>: ")
	m.text(p.State)
	m.raw(".</p>\n")
	if p.OfferedHash != "" {
		m.raw("<h2>The change offered</h2>\n<pre id=\"diff\" class=\"diff\">")
		for _, line := range strings.SplitAfter(p.Diff, "\n") {
			cls := ""
			switch {
			case strings.HasPrefix(line, "+"):
				cls = "add"
			case strings.HasPrefix(line, "-"):
				cls = "del"
			}
			if cls == "" {
				m.text(line)
				continue
			}
			m.raw("<span")
			m.attr("class", cls)
			m.raw(">")
			m.text(line)
			m.raw("</span>")
		}
		m.raw("</pre>\n")
		decisionForms(m, d.CSRF, "/ui/pins", p.Upstream, p.Kind, p.Name, p.OfferedHash)
	}
	m.raw("<details><summary>The pinned definition</summary><pre>")
	m.text(indentJSON(p.Definition))
	m.raw("</pre></details>\n<p><a href=\"/ui/pins\">Back to the pins</a></p>\n")
}

func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

type verdictView struct {
	CSRF    string
	Verdict *store.GuardVerdict
}

func (c *Console) guardView(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	hd := &head{Title: "A withheld item", Nav: "pins", Me: v.p, CSRF: v.s.csrf}
	gv, err := c.o.Ops.GetQuarantined(v.ctx, q.Get("upstream"), q.Get("kind"), q.Get("name"))
	if err != nil {
		c.refuse(w, v, hd.Title, "/ui/pins", err)
		return
	}
	d := verdictView{CSRF: v.s.csrf, Verdict: gv}
	c.write(w, http.StatusOK, hd, func(m *markup) { verdictViewMain(m, &d) })
}

func verdictViewMain(m *markup, d *verdictView) {
	g := d.Verdict
	m.raw("<p>")
	m.text(g.Kind)
	m.raw(" <code>")
	m.text(g.Name)
	m.raw("</code> of upstream <code>")
	m.text(g.Upstream)
	m.raw("</code>: <span id=\"verdict-state\">")
	m.text(g.State)
	m.raw("</span>; rules ")
	m.text(strings.Join(g.Rules, ", "))
	m.raw(" (rule set ")
	m.text(g.RulesVersion)
	m.raw(").</p>\n<h2>The text judged</h2>\n<pre id=\"judged\">")
	m.text(g.Text)
	m.raw("</pre>\n")
	if g.Pending() {
		decisionForms(m, d.CSRF, "/ui/guard", g.Upstream, g.Kind, g.Name, g.Hash)
	}
	m.raw("<p><a href=\"/ui/pins\">Back to the pins</a></p>\n")
}

func (c *Console) decidePin(approve bool) func(http.ResponseWriter, *http.Request, *viewer) {
	return func(w http.ResponseWriter, r *http.Request, v *viewer) {
		f := r.PostForm
		d := admin.PinDecision{Upstream: f.Get("upstream"), Kind: f.Get("kind"), Name: f.Get("name"), Hash: f.Get("hash")}
		var err error
		verb := "approved"
		if approve {
			_, err = c.o.Ops.ApprovePin(v.ctx, d)
		} else {
			verb = "rejected"
			_, err = c.o.Ops.RejectPin(v.ctx, d)
		}
		if err != nil {
			c.refuse(w, v, "Pins and quarantine", "/ui/pins", err)
			return
		}
		c.done(w, r, v, "/ui/pins", "The change of "+d.Name+" is "+verb+".")
	}
}

func (c *Console) decideQuarantined(approve bool) func(http.ResponseWriter, *http.Request, *viewer) {
	return func(w http.ResponseWriter, r *http.Request, v *viewer) {
		f := r.PostForm
		d := admin.QuarantineDecision{Upstream: f.Get("upstream"), Kind: f.Get("kind"), Name: f.Get("name"), Hash: f.Get("hash")}
		var err error
		verb := "released"
		if approve {
			_, err = c.o.Ops.ApproveQuarantined(v.ctx, d)
		} else {
			verb = "kept withheld"
			_, err = c.o.Ops.RejectQuarantined(v.ctx, d)
		}
		if err != nil {
			c.refuse(w, v, "Pins and quarantine", "/ui/pins", err)
			return
		}
		c.done(w, r, v, "/ui/pins", d.Name+" is "+verb+".")
	}
}
