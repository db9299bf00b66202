package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/hub"
)

// The queue and devices views read the gateway's JSON API in process as
// the signed-in person (GET /api/queue, /api/devices …), so the API's
// rules decide what they show: the queue is the signed-in tenant's own,
// devices are the tenant's (every tenant's for an operator).

// ---- queue

type queueData struct {
	CSRF, Flash string
	State       string
	Entries     []admin.QueuedCall
	Next        string // the next page's URL, "" on the last
}

func (c *Console) queue(w http.ResponseWriter, r *http.Request, v *viewer) {
	q := r.URL.Query()
	d := queueData{CSRF: v.s.csrf, Flash: c.takeFlash(v), State: q.Get("state")}
	hd := &head{Title: "Offline queue", Nav: "queue", Me: v.p, CSRF: v.s.csrf}
	params := url.Values{"limit": {"100"}}
	if d.State != "" {
		params.Set("state", d.State)
	}
	if a := q.Get("after"); a != "" {
		params.Set("after", a)
	}
	var out struct {
		Entries   []admin.QueuedCall `json:"entries"`
		NextAfter string             `json:"next_after"`
	}
	status := http.StatusOK
	if err := c.api(r, v, http.MethodGet, "/api/queue?"+params.Encode(), nil, &out); err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Entries = out.Entries
	if len(out.Entries) == 100 && out.NextAfter != "" {
		next := url.Values{"after": {out.NextAfter}}
		if d.State != "" {
			next.Set("state", d.State)
		}
		d.Next = "/ui/queue?" + next.Encode()
	}
	c.write(w, status, hd, func(m *markup) { queueMain(m, &d) })
}

func queueMain(m *markup, d *queueData) {
	flashNote(m, d.Flash)
	m.raw("<p>Tool calls your tenant queued while an upstream was away (or asked to run later), delivered in order with retries. ",
		"A call's result is read over MCP at its <code>mcpedge://queue/…</code> resource.</p>\n",
		"<form method=\"get\" action=\"/ui/queue\" class=\"filters\" role=\"search\">\n<label for=\"queue-state\">State</label>\n<select id=\"queue-state\" name=\"state\">")
	for _, s := range []string{"", "pending", "delivering", "done", "failed"} {
		m.raw("<option")
		m.attr("value", s)
		m.flag("selected", d.State == s)
		m.raw(">")
		if s == "" {
			m.raw("any")
		} else {
			m.text(s)
		}
		m.raw("</option>")
	}
	m.raw("</select>\n<button type=\"submit\">Show</button>\n</form>\n<table id=\"queue\">\n<caption>Queued calls, oldest first</caption>\n")
	theadRow(m, "Id", "Target", "Tool", "State", "Attempts", "Next attempt", "Queued", "Done", "Last error", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, e := range d.Entries {
		m.raw("<tr")
		m.attr("data-queued", e.ID)
		m.raw(">")
		codeCell(m, e.ID)
		cell(m, e.Target)
		codeCell(m, e.Tool)
		stateCell(m, e.State)
		cell(m, strconv.Itoa(e.Attempts))
		next, done := "—", "—"
		if e.NextAttempt != nil {
			next = when(*e.NextAttempt)
		}
		if e.DoneAt != nil {
			done = when(*e.DoneAt)
		}
		cell(m, next)
		cell(m, when(e.CreatedAt))
		cell(m, done)
		cell(m, e.LastError)
		m.raw("<td>")
		if e.State == "failed" || e.State == "pending" {
			actionForm(m, d.CSRF, "/ui/queue/retry", "Retry", "Retry queued call "+e.ID+" now", "id", e.ID)
			m.raw(" ")
		}
		actionForm(m, d.CSRF, "/ui/queue/purge", "Purge", "Purge queued call "+e.ID, "id", e.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Entries) == 0 {
		m.raw("<tr><td colspan=\"10\">No queued calls.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
	if d.Next != "" {
		m.raw("<p><a")
		m.href("href", d.Next)
		m.raw(">Next page</a></p>\n")
	}
}

func (c *Console) queueAction(retry bool) func(http.ResponseWriter, *http.Request, *viewer) {
	return func(w http.ResponseWriter, r *http.Request, v *viewer) {
		id := r.PostForm.Get("id")
		if !admin.ValidQueueID(id) {
			c.refuse(w, v, "Offline queue", "/ui/queue", invalid("no such queued call"))
			return
		}
		var err error
		msg := "Queued call " + id + " purged."
		if retry {
			err = c.api(r, v, http.MethodPost, "/api/queue/"+id+"/retry", nil, nil)
			msg = "Queued call " + id + " is due again now."
		} else {
			err = c.api(r, v, http.MethodDelete, "/api/queue/"+id, nil, nil)
		}
		if err != nil {
			c.refuse(w, v, "Offline queue", "/ui/queue", err)
			return
		}
		c.done(w, r, v, "/ui/queue", msg)
	}
}

// ---- devices (every gateway can be a hub: devices enroll with a token)

type devicesData struct {
	CSRF, Flash string
	Devices     []hub.DeviceView
	Operator    bool
}

func (c *Console) devices(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := devicesData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Operator: v.p.Operator}
	hd := &head{Title: "Devices", Nav: "devices", Me: v.p, CSRF: v.s.csrf}
	var out struct {
		Devices []hub.DeviceView `json:"devices"`
	}
	status := http.StatusOK
	if err := c.api(r, v, http.MethodGet, hub.PathDevices, nil, &out); err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Devices = out.Devices
	c.write(w, status, hd, func(m *markup) { devicesMain(m, &d) })
}

func devicesMain(m *markup, d *devicesData) {
	flashNote(m, d.Flash)
	m.raw("<table id=\"devices\">\n<caption>Enrolled devices</caption>\n")
	cols := []string{"Name", "Kind", "Attested", "PCR policy", "Last contact", "From", "Queue depth", "Last refusal"}
	if d.Operator {
		cols = append([]string{"Tenant"}, cols...)
	}
	theadRow(m, append(cols, `<span class="sr">Action</span>`)...)
	m.raw("<tbody>\n")
	for _, dv := range d.Devices {
		m.raw("<tr")
		m.attr("data-device", dv.Name)
		m.raw(">")
		if d.Operator {
			cell(m, dv.TenantName)
		}
		cell(m, dv.Name)
		cell(m, dv.Kind)
		stateCell(m, map[bool]string{true: "attested", false: "unattested"}[dv.Attested])
		pol := dv.PCRPolicy
		if pol == "" {
			pol = "enrolled"
		}
		if dv.Reapprove {
			pol += " (re-approval pending)"
		}
		cell(m, pol)
		cell(m, when(dv.LastContact))
		cell(m, dv.LastAddr)
		depth := "—"
		if dv.QueueDepth != nil {
			depth = strconv.FormatInt(*dv.QueueDepth, 10)
		}
		cell(m, depth)
		refusal := dv.Refusal
		if refusal != "" {
			refusal = when(dv.RefusedAt) + ": " + refusal
		}
		cell(m, refusal)
		m.raw("<td>")
		if dv.Kind == "tpm" {
			actionForm(m, d.CSRF, "/ui/devices/reapprove", "Re-approve", "Accept the next PCR values of "+dv.Name, "id", dv.ID)
			m.raw(" ")
		}
		actionForm(m, d.CSRF, "/ui/devices/revoke", "Remove", "Remove device "+dv.Name+" and revoke its credential", "id", dv.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Devices) == 0 {
		m.raw("<tr><td colspan=\"10\">No devices.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<p>Enroll a device with a token from <code>mcpedge hub token create</code>, set as the device's <code>enroll_token</code> (docs/hub.md).</p>\n")
}

func (c *Console) deviceAction(reapprove bool) func(http.ResponseWriter, *http.Request, *viewer) {
	return func(w http.ResponseWriter, r *http.Request, v *viewer) {
		id := r.PostForm.Get("id")
		if id == "" || strings.ContainsAny(id, "/?#") {
			c.refuse(w, v, "Devices", "/ui/devices", invalid("no such device"))
			return
		}
		path := hub.PathDevices + "/" + url.PathEscape(id)
		var err error
		msg := "Device removed; its credential is revoked."
		if reapprove {
			err = c.api(r, v, http.MethodPost, path+"/reapprove", nil, nil)
			msg = "The device's next PCR values will be accepted."
		} else {
			err = c.api(r, v, http.MethodDelete, path, nil, nil)
		}
		if err != nil {
			c.refuse(w, v, "Devices", "/ui/devices", err)
			return
		}
		c.done(w, r, v, "/ui/devices", msg)
	}
}
