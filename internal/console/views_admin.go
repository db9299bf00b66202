package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// The administration views: tenants, users, plans, virtual servers and
// rules. Each calls admin.Ops with the signed-in principal, so who may
// see and change what is exactly the API's rule; a refusal is the API's
// status and message on the page. Every change is a form post with the
// session's CSRF token (checked by authed) that redirects back with a
// message shown once.

// flash keeps a message for the next page the session shows.
func (c *Console) flash(v *viewer, msg string) {
	c.mu.Lock()
	v.s.flash = msg
	c.mu.Unlock()
}

// takeFlash returns the session's message and forgets it.
func (c *Console) takeFlash(v *viewer) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := v.s.flash
	v.s.flash = ""
	return f
}

// done ends a successful change: back to the page, with a message.
func (c *Console) done(w http.ResponseWriter, r *http.Request, v *viewer, to, msg string) {
	c.flash(v, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// refuse shows an admin error (or another failure) on a bare page with a
// way back: the API's status and message.
func (c *Console) refuse(w http.ResponseWriter, v *viewer, title, back string, err error) {
	status, msg := errorOf(err)
	if status >= 500 {
		c.o.Log.Warn("console: an action failed", "page", title, "err", err)
	}
	c.write(w, status, &head{Title: title, Me: v.p, CSRF: v.s.csrf, Error: msg}, func(m *markup) {
		m.raw("<p><a")
		m.href("href", back)
		m.raw(">Back</a></p>")
	})
}

// errorOf is the API's status and message for err.
func errorOf(err error) (int, string) {
	ae := admin.AsError(err)
	return ae.Status(), ae.Message
}

// invalid is a refusal of a form's value, as the API words one.
func invalid(msg string) error {
	return &admin.Error{Code: admin.CodeInvalidArgument, Message: msg}
}

// tenantParam is the tenant a per-tenant view is about: ?tenant= (or the
// form's tenant on a post), the signed-in tenant by default.
func tenantParam(r *http.Request, v *viewer) string {
	t := r.FormValue("tenant")
	if t == "" {
		t = v.p.TenantID
	}
	return t
}

// tenantURL is path for tenant (no parameter for the signed-in one).
func tenantURL(path, tenant string, v *viewer) string {
	if tenant == "" || tenant == v.p.TenantID {
		return path
	}
	return path + "?tenant=" + url.QueryEscape(tenant)
}

// splitList reads a list typed into one field: items separated by commas
// or white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// tenantChoice is what a per-tenant page shows of the tenant chooser.
type tenantChoice struct {
	Current string // id or name as asked
	Label   string // the tenant's name
	// All is every tenant, for operator admins (a chooser is shown).
	All []store.Tenant
}

// chooseTenant fills the chooser: operator admins get every tenant.
func (c *Console) chooseTenant(v *viewer, tenant string) tenantChoice {
	tc := tenantChoice{Current: tenant, Label: tenant}
	if tenant == v.p.TenantID {
		tc.Label = v.p.TenantName
	}
	if v.p.Operator && v.p.AtLeast(principal.RoleAdmin) {
		if ts, err := c.o.Ops.ListTenants(v.ctx); err == nil {
			tc.All = ts
			for _, t := range ts {
				if t.ID == tenant || t.Name == tenant {
					tc.Label = t.Name
				}
			}
		}
	}
	return tc
}

// chooserForm writes the tenant chooser of a per-tenant page.
func chooserForm(m *markup, action string, tc *tenantChoice) {
	if len(tc.All) == 0 {
		return
	}
	m.raw(`<form method="get" class="filters" role="search"`)
	m.href("action", action)
	m.raw(">\n<label for=\"tenant-pick\">Tenant</label>\n<select id=\"tenant-pick\" name=\"tenant\">")
	for _, t := range tc.All {
		m.raw("<option")
		m.attr("value", t.ID)
		m.flag("selected", t.ID == tc.Current || t.Name == tc.Current)
		m.raw(">")
		m.text(t.Name)
		m.raw("</option>")
	}
	m.raw("</select>\n<button type=\"submit\">Show</button>\n</form>\n")
}

// flashNote writes a message kept from the last change.
func flashNote(m *markup, msg string) {
	if msg == "" {
		return
	}
	m.raw(`<p class="ok" role="status" id="flash">`)
	m.text(msg)
	m.raw("</p>\n")
}

func planSelect(m *markup, id, name string, plans []admin.PlanInfo, selected string) {
	m.raw("<select")
	m.attr("id", id)
	m.attr("name", name)
	m.raw(">")
	for _, p := range plans {
		m.raw("<option")
		m.attr("value", p.Name)
		m.flag("selected", p.Name == selected)
		m.raw(">")
		m.text(p.Name)
		m.raw("</option>")
	}
	m.raw("</select>")
}

// ---- tenants

type tenantsData struct {
	CSRF, Flash string
	Operator    bool // the viewer administers the gateway
	Owner       bool // … and may create operator tenants
	Admin       bool // the viewer may change its own tenant's IP allowlist
	Tenants     []store.Tenant
	Plans       []admin.PlanInfo
}

func (c *Console) tenants(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := tenantsData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Operator: v.p.Operator && v.p.AtLeast(principal.RoleAdmin),
		Owner: v.p.Operator && v.p.AtLeast(principal.RoleOwner), Admin: v.p.AtLeast(principal.RoleAdmin)}
	hd := &head{Title: "Tenants", Nav: "tenants", Me: v.p, CSRF: v.s.csrf}
	ts, err := c.o.Ops.ListTenants(v.ctx)
	if err == nil {
		d.Tenants = ts
		d.Plans, err = c.o.Ops.ListPlans(v.ctx)
	}
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	c.write(w, status, hd, func(m *markup) { tenantsMain(m, &d) })
}

func tenantsMain(m *markup, d *tenantsData) {
	flashNote(m, d.Flash)
	m.raw("<table id=\"tenants\">\n<caption>Tenants</caption>\n")
	theadRow(m, "Name", "Plan", "Operator", "State", "IP allowlist", "Created", "Of this tenant", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, t := range d.Tenants {
		m.raw("<tr")
		m.attr("data-tenant", t.Name)
		m.raw(">")
		cell(m, t.Name)
		cell(m, t.Plan)
		cell(m, yesNo(t.Operator))
		state := "active"
		if t.Disabled {
			state = "disabled"
		}
		stateCell(m, state)
		cell(m, strings.Join(t.IPAllowlist, ", "))
		cell(m, when(t.CreatedAt))
		m.raw("<td>")
		q := "?tenant=" + url.QueryEscape(t.ID)
		for i, l := range [][2]string{{"/ui/users", "users"}, {"/ui/keys", "keys"}, {"/ui/servers", "servers"}, {"/ui/rules", "rules"}, {"/ui/audit", "audit"}} {
			if i > 0 {
				m.raw(" · ")
			}
			m.raw("<a")
			m.href("href", l[0]+q)
			m.attr("aria-label", l[1]+" of "+t.Name)
			m.raw(">", l[1], "</a>")
		}
		m.raw("</td><td>")
		if d.Admin {
			m.raw("<form method=\"post\" action=\"/ui/tenants/update\" class=\"inline\">")
			m.hidden("csrf", d.CSRF)
			m.hidden("tenant", t.ID)
			m.raw(`<input name="ip_allowlist" placeholder="CIDRs; empty: any"`)
			m.attr("value", strings.Join(t.IPAllowlist, ", "))
			m.attr("aria-label", "IP allowlist of "+t.Name)
			m.raw(`><button type="submit"`)
			m.attr("aria-label", "Set the IP allowlist of "+t.Name)
			m.raw(">Set allowlist</button></form>\n")
		}
		if d.Operator {
			if t.Disabled {
				actionForm(m, d.CSRF, "/ui/tenants/update", "Enable", "Enable tenant "+t.Name, "tenant", t.ID, "disabled", "false")
			} else {
				actionForm(m, d.CSRF, "/ui/tenants/update", "Disable", "Disable tenant "+t.Name, "tenant", t.ID, "disabled", "true")
			}
			m.raw("\n<form method=\"post\" action=\"/ui/tenants/update\" class=\"inline\">")
			m.hidden("csrf", d.CSRF)
			m.hidden("tenant", t.ID)
			planSelect(m, "plan-"+t.ID, "plan", d.Plans, t.Plan)
			m.raw(`<button type="submit"`)
			m.attr("aria-label", "Set the plan of "+t.Name)
			m.raw(">Set plan</button></form>\n<form method=\"post\" action=\"/ui/tenants/delete\" class=\"inline\">")
			m.hidden("csrf", d.CSRF)
			m.hidden("tenant", t.ID)
			m.raw("<label class=\"confirm\"><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required")
			m.attr("aria-label", "Confirm deleting "+t.Name)
			m.raw("> sure</label><button type=\"submit\"")
			m.attr("aria-label", "Delete tenant "+t.Name)
			m.raw(">Delete</button></form>")
		}
		m.raw("</td></tr>\n")
	}
	if len(d.Tenants) == 0 {
		m.raw("<tr><td colspan=\"8\">No tenants.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
	if !d.Operator {
		m.raw("<p>Only administrators of an operator tenant create tenants, change plans and disable or delete tenants. A tenant's admins may change its IP allowlist, but not to one that leaves out their own address.</p>\n")
		return
	}
	m.raw("<form method=\"post\" action=\"/ui/tenants\" class=\"card\" id=\"create-tenant\">\n<h2>Create a tenant</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.raw("\n<label for=\"tenant-name\">Name (lower-case letters, digits, - and _)</label>\n<input id=\"tenant-name\" name=\"name\" required maxlength=\"32\" pattern=\"[a-z0-9][a-z0-9_\\-]{0,31}\">\n",
		"<label for=\"tenant-plan\">Plan</label>\n")
	planSelect(m, "tenant-plan", "plan", d.Plans, "")
	m.raw("\n<label for=\"tenant-upstreams\">Upstreams it may use (comma-separated; empty: all)</label>\n<input id=\"tenant-upstreams\" name=\"upstreams\">\n",
		"<label for=\"tenant-allow\">IP allowlist (CIDRs, comma-separated; empty: any address)</label>\n<input id=\"tenant-allow\" name=\"ip_allowlist\">\n")
	if d.Owner {
		m.raw("<label class=\"check\"><input type=\"checkbox\" name=\"operator\" value=\"yes\"> an operator tenant (administers the whole gateway)</label>\n")
	}
	m.raw("<button type=\"submit\">Create tenant</button>\n</form>\n")
}

func (c *Console) createTenant(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	s := admin.TenantSpec{Name: strings.TrimSpace(f.Get("name")), Plan: f.Get("plan"), Upstreams: splitList(f.Get("upstreams")),
		IPAllowlist: splitList(f.Get("ip_allowlist")), Operator: f.Get("operator") == "yes"}
	t, err := c.o.Ops.CreateTenant(v.ctx, s)
	if err != nil {
		c.refuse(w, v, "Tenants", "/ui/tenants", err)
		return
	}
	c.done(w, r, v, "/ui/tenants", "Tenant "+t.Name+" created.")
}

func (c *Console) updateTenant(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	var p admin.TenantPatch
	if f.Has("plan") {
		plan := f.Get("plan")
		p.Plan = &plan
	}
	if f.Has("disabled") {
		dis := f.Get("disabled") == "true"
		p.Disabled = &dis
	}
	if f.Has("ip_allowlist") {
		allow := splitList(f.Get("ip_allowlist"))
		if allow == nil {
			allow = []string{}
		}
		p.IPAllowlist = &allow
	}
	t, err := c.o.Ops.UpdateTenant(v.ctx, f.Get("tenant"), p)
	if err != nil {
		c.refuse(w, v, "Tenants", "/ui/tenants", err)
		return
	}
	c.done(w, r, v, "/ui/tenants", "Tenant "+t.Name+" changed.")
}

func (c *Console) deleteTenant(w http.ResponseWriter, r *http.Request, v *viewer) {
	if r.PostForm.Get("confirm") != "yes" {
		c.refuse(w, v, "Tenants", "/ui/tenants", invalid("tick the box to confirm deleting the tenant"))
		return
	}
	if err := c.o.Ops.DeleteTenant(v.ctx, r.PostForm.Get("tenant")); err != nil {
		c.refuse(w, v, "Tenants", "/ui/tenants", err)
		return
	}
	c.done(w, r, v, "/ui/tenants", "Tenant deleted.")
}

// ---- users

type usersData struct {
	CSRF, Flash string
	Tenant      tenantChoice
	Users       []store.User
	Owner       bool // the viewer may make owners
}

func (c *Console) users(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	d := usersData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Tenant: c.chooseTenant(v, tenant), Owner: v.p.AtLeast(principal.RoleOwner)}
	hd := &head{Title: "Users", Nav: "users", Me: v.p, CSRF: v.s.csrf}
	us, err := c.o.Ops.ListUsers(v.ctx, tenant)
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Users = us
	c.write(w, status, hd, func(m *markup) { usersMain(m, &d) })
}

func usersMain(m *markup, d *usersData) {
	flashNote(m, d.Flash)
	chooserForm(m, "/ui/users", &d.Tenant)
	m.raw("<table id=\"users\">\n<caption>Users of tenant <code>")
	m.text(d.Tenant.Label)
	m.raw("</code></caption>\n")
	theadRow(m, "Name", "Role", "State", "Created", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, u := range d.Users {
		m.raw("<tr")
		m.attr("data-user", u.Name)
		m.raw(">")
		cell(m, u.Name)
		cell(m, u.Role)
		state := "active"
		if u.Disabled {
			state = "disabled"
		}
		stateCell(m, state)
		cell(m, when(u.CreatedAt))
		m.raw("<td>\n<form method=\"post\" action=\"/ui/users/update\" class=\"inline\">")
		m.hidden("csrf", d.CSRF)
		m.hidden("tenant", d.Tenant.Current)
		m.hidden("id", u.ID)
		roleSelect(m, "role-"+u.ID, "role", u.Role)
		m.raw(`<button type="submit"`)
		m.attr("aria-label", "Set the role of "+u.Name)
		m.raw(">Set role</button></form>\n")
		if u.Disabled {
			actionForm(m, d.CSRF, "/ui/users/update", "Enable", "Enable user "+u.Name, "tenant", d.Tenant.Current, "id", u.ID, "disabled", "false")
		} else {
			actionForm(m, d.CSRF, "/ui/users/update", "Disable", "Disable user "+u.Name, "tenant", d.Tenant.Current, "id", u.ID, "disabled", "true")
		}
		m.raw("\n<form method=\"post\" action=\"/ui/users/update\" class=\"inline\">")
		m.hidden("csrf", d.CSRF)
		m.hidden("tenant", d.Tenant.Current)
		m.hidden("id", u.ID)
		m.raw(`<input type="password" name="password" autocomplete="new-password" minlength="12" required`)
		m.attr("aria-label", "New password for "+u.Name)
		m.raw(`><button type="submit"`)
		m.attr("aria-label", "Set the password of "+u.Name)
		m.raw(">Set password</button></form>\n")
		actionForm(m, d.CSRF, "/ui/users/delete", "Delete", "Delete user "+u.Name, "tenant", d.Tenant.Current, "id", u.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Users) == 0 {
		m.raw("<tr><td colspan=\"5\">No users.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<form method=\"post\" action=\"/ui/users\" class=\"card\" id=\"create-user\">\n<h2>Add a user</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("tenant", d.Tenant.Current)
	m.raw("\n<label for=\"user-name\">Name</label>\n<input id=\"user-name\" name=\"name\" required maxlength=\"64\">\n<label for=\"user-role\">Role</label>\n")
	roleSelect(m, "user-role", "role", principal.RoleMember)
	m.raw("\n<label for=\"user-password\">Password (empty: the user can not sign in with a password)</label>\n",
		"<input id=\"user-password\" name=\"password\" type=\"password\" autocomplete=\"new-password\">\n",
		"<button type=\"submit\">Add user</button>\n</form>\n")
}

func (c *Console) createUser(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	f := r.PostForm
	u, err := c.o.Ops.CreateUser(v.ctx, tenant, admin.UserSpec{Name: strings.TrimSpace(f.Get("name")), Role: f.Get("role"), Password: f.Get("password")})
	back := tenantURL("/ui/users", tenant, v)
	if err != nil {
		c.refuse(w, v, "Users", back, err)
		return
	}
	c.done(w, r, v, back, "User "+u.Name+" added.")
}

func (c *Console) updateUser(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	f := r.PostForm
	var p admin.UserPatch
	if f.Has("role") {
		role := f.Get("role")
		p.Role = &role
	}
	if f.Has("password") {
		pw := f.Get("password")
		p.Password = &pw
	}
	if f.Has("disabled") {
		dis := f.Get("disabled") == "true"
		p.Disabled = &dis
	}
	back := tenantURL("/ui/users", tenant, v)
	u, err := c.o.Ops.UpdateUser(v.ctx, tenant, f.Get("id"), p)
	if err != nil {
		c.refuse(w, v, "Users", back, err)
		return
	}
	c.done(w, r, v, back, "User "+u.Name+" changed.")
}

func (c *Console) deleteUser(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	back := tenantURL("/ui/users", tenant, v)
	if err := c.o.Ops.DeleteUser(v.ctx, tenant, r.PostForm.Get("id")); err != nil {
		c.refuse(w, v, "Users", back, err)
		return
	}
	c.done(w, r, v, back, "User deleted.")
}

// ---- plans

type plansData struct {
	CSRF, Flash string
	Operator    bool
	Plans       []admin.PlanInfo
}

// planFields are the plan limits the page shows and sets, in order.
func planFields() []struct{ key, label string } {
	return []struct{ key, label string }{
		{"key_per_minute", "Calls/min per key"}, {"key_burst", "Key burst"},
		{"tenant_per_minute", "Calls/min per tenant"}, {"tenant_burst", "Tenant burst"},
		{"ip_per_minute", "Calls/min per address"}, {"ip_burst", "Address burst"},
		{"monthly_quota", "Monthly quota"}, {"lattice_max_points", "Lattice points"}, {"lattice_timeout_ms", "Lattice timeout (ms)"},
	}
}

func planValue(p *store.Plan, key string) *int64 {
	switch key {
	case "key_per_minute":
		return &p.KeyPerMinute
	case "key_burst":
		return &p.KeyBurst
	case "tenant_per_minute":
		return &p.TenantPerMinute
	case "tenant_burst":
		return &p.TenantBurst
	case "ip_per_minute":
		return &p.IPPerMinute
	case "ip_burst":
		return &p.IPBurst
	case "monthly_quota":
		return &p.MonthlyQuota
	case "lattice_max_points":
		return &p.LatticeMaxPoints
	case "lattice_timeout_ms":
		return &p.LatticeTimeoutMS
	}
	return nil
}

func (c *Console) plans(w http.ResponseWriter, r *http.Request, v *viewer) {
	d := plansData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Operator: v.p.Operator && v.p.AtLeast(principal.RoleAdmin)}
	hd := &head{Title: "Plans", Nav: "plans", Me: v.p, CSRF: v.s.csrf}
	ps, err := c.o.Ops.ListPlans(v.ctx)
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Plans = ps
	c.write(w, status, hd, func(m *markup) { plansMain(m, &d) })
}

func plansMain(m *markup, d *plansData) {
	flashNote(m, d.Flash)
	m.raw("<table id=\"plans\">\n<caption>Plans (rates per minute; 0: unlimited)</caption>\n<thead><tr><th scope=\"col\">Name</th>")
	for _, f := range planFields() {
		m.raw(`<th scope="col">`, f.label, "</th>")
	}
	m.raw(`<th scope="col">Source</th><th scope="col"><span class="sr">Action</span></th></tr></thead>`, "\n<tbody>\n")
	for i := range d.Plans {
		p := &d.Plans[i]
		m.raw("<tr")
		m.attr("data-plan", p.Name)
		m.raw(">")
		cell(m, p.Name)
		for _, f := range planFields() {
			cell(m, strconv.FormatInt(*planValue(&p.Plan, f.key), 10))
		}
		cell(m, p.Source)
		m.raw("<td>")
		if d.Operator && p.Source == admin.PlanFromStore {
			label := "Delete plan " + p.Name
			if p.Configured {
				label = "Remove the override of plan " + p.Name
			}
			actionForm(m, d.CSRF, "/ui/plans/delete", "Delete", label, "name", p.Name)
		}
		m.raw("</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
	if !d.Operator {
		return
	}
	m.raw("<form method=\"post\" action=\"/ui/plans\" class=\"card\" id=\"put-plan\">\n<h2>Create or change a plan</h2>\n<p>A limit left empty keeps its current value (0 for a new plan).</p>\n")
	m.hidden("csrf", d.CSRF)
	m.raw("\n<label for=\"plan-name\">Name</label>\n<input id=\"plan-name\" name=\"name\" required maxlength=\"32\">\n")
	for _, f := range planFields() {
		m.raw("<label")
		m.attr("for", "plan-"+f.key)
		m.raw(">", f.label, "</label>\n<input type=\"number\" min=\"0\"")
		m.attr("id", "plan-"+f.key)
		m.attr("name", f.key)
		m.raw(">\n")
	}
	m.raw("<button type=\"submit\">Save plan</button>\n</form>\n")
}

func (c *Console) putPlan(w http.ResponseWriter, r *http.Request, v *viewer) {
	f := r.PostForm
	var l admin.PlanLimits
	var tmp store.Plan
	set := map[string]*int64{}
	for _, pf := range planFields() {
		s := strings.TrimSpace(f.Get(pf.key))
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			c.refuse(w, v, "Plans", "/ui/plans", invalid(pf.key+" must be a whole number"))
			return
		}
		*planValue(&tmp, pf.key) = n
		set[pf.key] = planValue(&tmp, pf.key)
	}
	l.KeyPerMinute, l.KeyBurst = set["key_per_minute"], set["key_burst"]
	l.TenantPerMinute, l.TenantBurst = set["tenant_per_minute"], set["tenant_burst"]
	l.IPPerMinute, l.IPBurst = set["ip_per_minute"], set["ip_burst"]
	l.MonthlyQuota, l.LatticeMaxPoints, l.LatticeTimeoutMS = set["monthly_quota"], set["lattice_max_points"], set["lattice_timeout_ms"]
	p, err := c.o.Ops.PutPlan(v.ctx, strings.TrimSpace(f.Get("name")), l)
	if err != nil {
		c.refuse(w, v, "Plans", "/ui/plans", err)
		return
	}
	c.done(w, r, v, "/ui/plans", "Plan "+p.Name+" saved.")
}

func (c *Console) deletePlan(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := c.o.Ops.DeletePlan(v.ctx, r.PostForm.Get("name")); err != nil {
		c.refuse(w, v, "Plans", "/ui/plans", err)
		return
	}
	c.done(w, r, v, "/ui/plans", "Plan override deleted.")
}

// ---- virtual servers

type serversData struct {
	CSRF, Flash string
	Tenant      tenantChoice
	Servers     []store.VirtualServer
	// Operator: the viewer may add virtual servers (widening what a
	// tenant sees is for operator admins; a tenant's admins may delete).
	Operator bool
}

func (c *Console) servers(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	d := serversData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Tenant: c.chooseTenant(v, tenant), Operator: v.p.Operator && v.p.AtLeast(principal.RoleAdmin)}
	hd := &head{Title: "Virtual servers", Nav: "servers", Me: v.p, CSRF: v.s.csrf}
	vs, err := c.o.Ops.ListVirtualServers(v.ctx, tenant)
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Servers = vs
	c.write(w, status, hd, func(m *markup) { serversMain(m, &d) })
}

func serversMain(m *markup, d *serversData) {
	flashNote(m, d.Flash)
	chooserForm(m, "/ui/servers", &d.Tenant)
	m.raw("<p>A tenant sees the union of its virtual servers: their upstreams (<code>*</code>: all), narrowed to the tool globs when any are given.</p>\n",
		"<table id=\"servers\">\n<caption>Virtual servers of tenant <code>")
	m.text(d.Tenant.Label)
	m.raw("</code></caption>\n")
	theadRow(m, "Name", "Upstreams", "Tools", "Created", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, s := range d.Servers {
		m.raw("<tr")
		m.attr("data-server", s.Name)
		m.raw(">")
		cell(m, s.Name)
		codeCell(m, strings.Join(s.Upstreams, ", "))
		tools := strings.Join(s.Tools, ", ")
		if tools == "" {
			tools = "all"
		}
		codeCell(m, tools)
		cell(m, when(s.CreatedAt))
		m.raw("<td>")
		if d.Operator {
			m.raw("<form method=\"post\" action=\"/ui/servers/update\" class=\"inline\">")
			m.hidden("csrf", d.CSRF)
			m.hidden("tenant", d.Tenant.Current)
			m.hidden("id", s.ID)
			m.raw(`<input name="upstreams" required`)
			m.attr("value", strings.Join(s.Upstreams, ", "))
			m.attr("aria-label", "Upstreams of "+s.Name)
			m.raw(`><input name="tools" placeholder="tool globs; empty: all"`)
			m.attr("value", strings.Join(s.Tools, ", "))
			m.attr("aria-label", "Tool globs of "+s.Name)
			m.raw(`><button type="submit"`)
			m.attr("aria-label", "Save virtual server "+s.Name)
			m.raw(">Save</button></form>\n")
		}
		actionForm(m, d.CSRF, "/ui/servers/delete", "Delete", "Delete virtual server "+s.Name, "tenant", d.Tenant.Current, "id", s.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Servers) == 0 {
		m.raw("<tr><td colspan=\"5\">No virtual servers: the tenant sees no tools.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n")
	if !d.Operator {
		m.raw("<p>Only administrators of an operator tenant add virtual servers (they widen what a tenant sees); narrow access with rules.</p>\n")
		return
	}
	m.raw("<form method=\"post\" action=\"/ui/servers\" class=\"card\" id=\"create-server\">\n<h2>Add a virtual server</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("tenant", d.Tenant.Current)
	m.raw("\n<label for=\"server-name\">Name</label>\n<input id=\"server-name\" name=\"name\" required maxlength=\"64\">\n",
		"<label for=\"server-upstreams\">Upstreams (comma-separated; * for all)</label>\n<input id=\"server-upstreams\" name=\"upstreams\" required>\n",
		"<label for=\"server-tools\">Tool globs (comma-separated, e.g. everything__get*; empty: all tools of those upstreams)</label>\n<input id=\"server-tools\" name=\"tools\">\n",
		"<button type=\"submit\">Add virtual server</button>\n</form>\n")
}

func (c *Console) createServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	f := r.PostForm
	back := tenantURL("/ui/servers", tenant, v)
	s, err := c.o.Ops.CreateVirtualServer(v.ctx, tenant, admin.VirtualServerSpec{Name: strings.TrimSpace(f.Get("name")), Upstreams: splitList(f.Get("upstreams")), Tools: splitList(f.Get("tools"))})
	if err != nil {
		c.refuse(w, v, "Virtual servers", back, err)
		return
	}
	c.done(w, r, v, back, "Virtual server "+s.Name+" added.")
}

func (c *Console) updateServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	f := r.PostForm
	back := tenantURL("/ui/servers", tenant, v)
	tools := splitList(f.Get("tools"))
	if tools == nil {
		tools = []string{}
	}
	s, err := c.o.Ops.UpdateVirtualServer(v.ctx, tenant, f.Get("id"), admin.VirtualServerSpec{Upstreams: splitList(f.Get("upstreams")), Tools: tools})
	if err != nil {
		c.refuse(w, v, "Virtual servers", back, err)
		return
	}
	c.done(w, r, v, back, "Virtual server "+s.Name+" saved.")
}

func (c *Console) deleteServer(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	back := tenantURL("/ui/servers", tenant, v)
	if err := c.o.Ops.DeleteVirtualServer(v.ctx, tenant, r.PostForm.Get("id")); err != nil {
		c.refuse(w, v, "Virtual servers", back, err)
		return
	}
	c.done(w, r, v, back, "Virtual server deleted.")
}

// ---- rules

type rulesData struct {
	CSRF, Flash string
	Tenant      tenantChoice
	Rules       []store.Rule
}

func (c *Console) rules(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	d := rulesData{CSRF: v.s.csrf, Flash: c.takeFlash(v), Tenant: c.chooseTenant(v, tenant)}
	hd := &head{Title: "Rules", Nav: "rules", Me: v.p, CSRF: v.s.csrf}
	rs, err := c.o.Ops.ListRules(v.ctx, tenant)
	status := http.StatusOK
	if err != nil {
		status, hd.Error = errorOf(err)
	}
	d.Rules = rs
	c.write(w, status, hd, func(m *markup) { rulesMain(m, &d) })
}

func rulesMain(m *markup, d *rulesData) {
	flashNote(m, d.Flash)
	chooserForm(m, "/ui/rules", &d.Tenant)
	m.raw("<p>Rules allow or deny tools (globs on the namespaced name) to roles and key scopes, in this order: higher priority first, deny first on a tie.</p>\n",
		"<table id=\"rules\">\n<caption>Rules of tenant <code>")
	m.text(d.Tenant.Label)
	m.raw("</code></caption>\n")
	theadRow(m, "Priority", "Effect", "Tool", "Roles", "Scopes", "Created", `<span class="sr">Action</span>`)
	m.raw("<tbody>\n")
	for _, ru := range d.Rules {
		m.raw("<tr")
		m.attr("data-rule", ru.Tool)
		m.raw(">")
		cell(m, strconv.Itoa(ru.Priority))
		stateCell(m, ru.Effect)
		codeCell(m, ru.Tool)
		cell(m, orEveryone(ru.Roles))
		cell(m, orEveryone(ru.Scopes))
		cell(m, when(ru.CreatedAt))
		m.raw("<td>")
		actionForm(m, d.CSRF, "/ui/rules/delete", "Delete", "Delete the "+ru.Effect+" rule on "+ru.Tool, "tenant", d.Tenant.Current, "id", ru.ID)
		m.raw("</td></tr>\n")
	}
	if len(d.Rules) == 0 {
		m.raw("<tr><td colspan=\"7\">No rules: the plan and virtual servers decide.</td></tr>\n")
	}
	m.raw("</tbody>\n</table>\n<form method=\"post\" action=\"/ui/rules\" class=\"card\" id=\"create-rule\">\n<h2>Add a rule</h2>\n")
	m.hidden("csrf", d.CSRF)
	m.hidden("tenant", d.Tenant.Current)
	m.raw("\n<label for=\"rule-tool\">Tool glob</label>\n<input id=\"rule-tool\" name=\"tool\" required>\n",
		"<label for=\"rule-effect\">Effect</label>\n<select id=\"rule-effect\" name=\"effect\"><option value=\"deny\">deny</option><option value=\"allow\">allow</option></select>\n",
		"<label for=\"rule-roles\">Roles (comma-separated; empty with no scopes: everyone)</label>\n<input id=\"rule-roles\" name=\"roles\">\n",
		"<label for=\"rule-scopes\">Key scopes (comma-separated)</label>\n<input id=\"rule-scopes\" name=\"scopes\">\n",
		"<label for=\"rule-priority\">Priority</label>\n<input id=\"rule-priority\" name=\"priority\" type=\"number\" value=\"0\">\n",
		"<button type=\"submit\">Add rule</button>\n</form>\n")
}

func orEveryone(xs []string) string {
	if len(xs) == 0 {
		return "—"
	}
	return strings.Join(xs, ", ")
}

func (c *Console) createRule(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	f := r.PostForm
	back := tenantURL("/ui/rules", tenant, v)
	prio := 0
	if s := strings.TrimSpace(f.Get("priority")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			c.refuse(w, v, "Rules", back, invalid("priority must be a whole number"))
			return
		}
		prio = n
	}
	ru, err := c.o.Ops.CreateRule(v.ctx, tenant, admin.RuleSpec{Tool: strings.TrimSpace(f.Get("tool")), Effect: f.Get("effect"),
		Roles: splitList(f.Get("roles")), Scopes: splitList(f.Get("scopes")), Priority: prio})
	if err != nil {
		c.refuse(w, v, "Rules", back, err)
		return
	}
	c.done(w, r, v, back, "Rule "+ru.Effect+" "+ru.Tool+" added.")
}

func (c *Console) deleteRule(w http.ResponseWriter, r *http.Request, v *viewer) {
	tenant := tenantParam(r, v)
	back := tenantURL("/ui/rules", tenant, v)
	if err := c.o.Ops.DeleteRule(v.ctx, tenant, r.PostForm.Get("id")); err != nil {
		c.refuse(w, v, "Rules", back, err)
		return
	}
	c.done(w, r, v, back, "Rule deleted.")
}
