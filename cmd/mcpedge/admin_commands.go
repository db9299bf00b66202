package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/spf13/pflag"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/tenantexport"
)

func runMigrate(c *adminCtx, pos []string) error {
	// open.Open has migrated the schema already.
	v, err := c.st.SchemaVersion(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"store": c.st.Kind(), "schema_version": v})
	}
	fmt.Fprintf(c.stdout, "%s store is at schema version %d\n", c.st.Kind(), v)
	return nil
}

func runTenantCreate(c *adminCtx, pos []string) error {
	ups := cmdline.SplitList(c.upstreams)
	t, warnings, err := c.ops.CreateTenantWarn(c.ctx, admin.TenantSpec{Name: pos[0], Plan: c.plan, Upstreams: ups, Operator: c.operator})
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(c.stderr, "mcpedge: warning: %s\n", w)
	}
	if c.json {
		return c.printJSON(admin.CreatedTenant{Tenant: t, Warnings: warnings})
	}
	kind := "tenant"
	if t.Operator {
		kind = "operator tenant"
	}
	fmt.Fprintf(c.stdout, "created %s %s (id %s) on plan %s; virtual server %q serves upstreams %s\n", kind, t.Name, t.ID, t.Plan, admin.DefaultVirtualServer, strings.Join(ups, ","))
	return nil
}

func runTenantList(c *adminCtx, pos []string) error {
	ts, err := c.ops.ListTenants(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ts)
	}
	rows := make([][]string, len(ts))
	for i, t := range ts {
		rows[i] = []string{t.Name, t.ID, t.Plan, cmdline.YesNo(t.Operator), cmdline.YesNo(t.Disabled), strings.Join(t.IPAllowlist, ","), cmdline.Time(t.CreatedAt)}
	}
	return c.table("NAME\tID\tPLAN\tOPERATOR\tDISABLED\tIP ALLOWLIST\tCREATED", rows)
}

func runTenantRemove(c *adminCtx, pos []string) error {
	if c.erase {
		return runTenantErase(c, pos)
	}
	t, err := c.ops.GetTenant(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if err := c.ops.CanDeleteTenant(c.ctx, t.Name); err != nil {
		return err
	}
	if err := c.confirm(c.cmd, fmt.Sprintf("remove tenant %s (id %s) with its users, keys, virtual servers, rules and lattices?", t.Name, t.ID), c.yes); err != nil {
		return err
	}
	if err := c.ops.DeleteTenant(c.ctx, t.ID); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"tenant_id": t.ID, "name": t.Name, "removed": true})
	}
	fmt.Fprintf(c.stdout, "removed tenant %s and everything it owned (its audit entries stay)\n", pos[0])
	return nil
}

func runKeyCreate(c *adminCtx, pos []string) error {
	nk, err := c.ops.CreateKey(c.ctx, c.tenant, admin.KeySpec{Name: c.name, Role: c.role, Scopes: cmdline.SplitList(c.scopes), ExpiresIn: c.expires})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(nk)
	}
	c.printNewKey("created", nk)
	return nil
}

// printNewKey describes a new key, then prints its secret alone on the
// last line, so that scripts can take it with tail -n 1.
func (c *adminCtx) printNewKey(verb string, nk *admin.NewKey) {
	k := nk.Key
	scopes := "every right of the role"
	if len(k.Scopes) > 0 {
		scopes = strings.Join(k.Scopes, ",")
	}
	fmt.Fprintf(c.stdout, "%s key %s (id %s, prefix %s) in tenant %s: role %s, scopes %s, expires %s\n", verb, k.Name, k.ID, k.Prefix, c.tenantName(k.TenantID), k.Role, scopes, cmdline.TimeOr(k.ExpiresAt, "never"))
	if nk.Replaces != "" {
		fmt.Fprintf(c.stdout, "key %s keeps working for [auth] key_rotate_overlap (%s)\n", nk.Replaces, c.cfg.Auth.KeyRotateOverlap)
	}
	fmt.Fprintln(c.stdout, "the key is shown only now; store it somewhere safe:")
	fmt.Fprintln(c.stdout, nk.Secret)
}

func (c *adminCtx) tenantName(id string) string {
	if t, err := c.st.GetTenant(c.ctx, id); err == nil {
		return t.Name
	}
	return id
}

func runKeyList(c *adminCtx, pos []string) error {
	ks, err := c.ops.ListKeys(c.ctx, c.tenant)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ks)
	}
	now := time.Now()
	rows := make([][]string, len(ks))
	for i, k := range ks {
		state := admin.KeyState(&k, now)
		scopes := strings.Join(k.Scopes, ",")
		if scopes == "" {
			scopes = "-"
		}
		rows[i] = []string{k.Prefix, k.ID, k.Name, k.Role, scopes, state, cmdline.Time(k.ExpiresAt), cmdline.Time(k.LastUsedAt), cmdline.Time(k.CreatedAt)}
	}
	return c.table("PREFIX\tID\tNAME\tROLE\tSCOPES\tSTATE\tEXPIRES\tLAST USED\tCREATED", rows)
}

func runKeyRevoke(c *adminCtx, pos []string) error {
	k, err := c.ops.GetKey(c.ctx, c.tenant, pos[0])
	if err != nil {
		return err
	}
	if err := c.confirm(c.cmd, fmt.Sprintf("revoke key %s (id %s, prefix %s, role %s) of tenant %s? Clients using it are refused at once", k.Name, k.ID, k.Prefix, k.Role, c.tenantName(k.TenantID)), c.yes); err != nil {
		return err
	}
	if k, err = c.ops.RevokeKey(c.ctx, k.TenantID, k.ID); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(k)
	}
	fmt.Fprintf(c.stdout, "revoked key %s (id %s, prefix %s) of tenant %s\n", k.Name, k.ID, k.Prefix, c.tenantName(k.TenantID))
	return nil
}

func runKeyRotate(c *adminCtx, pos []string) error {
	nk, err := c.ops.RotateKey(c.ctx, c.tenant, pos[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(nk)
	}
	c.printNewKey("rotated: new", nk)
	return nil
}

func runUserCreate(c *adminCtx, pos []string) error {
	pw, err := c.readPassword()
	if err != nil {
		return err
	}
	if pw == "" {
		return fmt.Errorf("user create: the password is empty (set $%s or write it to stdin)", passwordEnv)
	}
	u, err := c.ops.CreateUser(c.ctx, c.tenant, admin.UserSpec{Name: pos[0], Role: c.role, Password: pw})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(u)
	}
	fmt.Fprintf(c.stdout, "created user %s (id %s) in tenant %s with role %s\n", u.Name, u.ID, c.tenant, u.Role)
	return nil
}

func runUserList(c *adminCtx, pos []string) error {
	us, err := c.ops.ListUsers(c.ctx, c.tenant)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(us)
	}
	rows := make([][]string, len(us))
	for i, u := range us {
		rows[i] = []string{u.Name, u.ID, u.Role, cmdline.YesNo(u.Disabled), cmdline.Time(u.CreatedAt)}
	}
	return c.table("NAME\tID\tROLE\tDISABLED\tCREATED", rows)
}

func runUserRemove(c *adminCtx, pos []string) error {
	if _, err := c.ops.GetUser(c.ctx, c.tenant, pos[0]); err != nil {
		return err
	}
	if err := c.confirm(c.cmd, fmt.Sprintf("remove user %s from tenant %s and end their sessions?", pos[0], c.tenant), c.yes); err != nil {
		return err
	}
	if err := c.ops.DeleteUser(c.ctx, c.tenant, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed user %s from tenant %s and ended their sessions\n", pos[0], c.tenant)
	return nil
}

func runPlanList(c *adminCtx, pos []string) error {
	ps, err := c.ops.ListPlans(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ps)
	}
	n := func(v int64) string {
		if v == 0 {
			return "-"
		}
		return strconv.FormatInt(v, 10)
	}
	rows := make([][]string, len(ps))
	for i, p := range ps {
		rows[i] = []string{p.Name, p.Source, n(p.KeyPerMinute) + "/" + n(p.KeyBurst), n(p.TenantPerMinute) + "/" + n(p.TenantBurst), n(p.IPPerMinute) + "/" + n(p.IPBurst), n(p.MonthlyQuota), n(p.LatticeMaxPoints), n(p.LatticeTimeoutMS)}
	}
	if err := c.table("NAME\tSOURCE\tKEY/MIN/BURST\tTENANT/MIN/BURST\tIP/MIN/BURST\tMONTHLY QUOTA\tLATTICE POINTS\tLATTICE TIMEOUT MS", rows); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "(- means unlimited, or the [lattice] default)")
	return nil
}

// planFlags are plan set's limits; only flags given change anything.
type planFlags struct {
	fs     *pflag.FlagSet
	values map[string]*int64
	// timeout is --lattice-timeout, a duration.
	timeout time.Duration
}

func (p *planFlags) declare(fs *pflag.FlagSet) {
	p.fs, p.values = fs, map[string]*int64{}
	for _, f := range admin.PlanLimitFields() {
		p.values[f.Flag] = fs.Int64(f.Flag, 0, fmt.Sprintf("%s (`N`, 0 to %d; 0: unlimited)", f.Help, admin.MaxPlanLimit))
	}
	fs.DurationVar(&p.timeout, "lattice-timeout", 0, "lattice operation timeout (`DURATION`; 0: the [lattice] default)")
}

// limits are the limits given; nil fields were not.
func (p *planFlags) limits() admin.PlanLimits {
	var l admin.PlanLimits
	for _, f := range admin.PlanLimitFields() {
		if p.fs.Changed(f.Flag) {
			*f.Field(&l) = p.values[f.Flag]
		}
	}
	if p.fs.Changed("lattice-timeout") {
		ms := p.timeout.Milliseconds()
		l.LatticeTimeoutMS = &ms
	}
	return l
}

// check refuses a plan set without a limit, and limits out of range,
// with the messages of the API.
func (p *planFlags) check() error {
	l := p.limits()
	if l.Empty() {
		return cmdline.Usagef("plan set: give at least one limit, e.g. --key-per-minute 100")
	}
	if err := l.Validate(); err != nil {
		return cmdline.Usagef("plan set: %v", err)
	}
	return nil
}

func runPlanSet(c *adminCtx, pos []string) error {
	p, err := c.ops.PutPlan(c.ctx, pos[0], c.limits.limits())
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(p)
	}
	fmt.Fprintf(c.stdout, "plan %s: key %d/min burst %d, tenant %d/min burst %d, ip %d/min burst %d, monthly quota %d, lattice max points %d, lattice timeout %dms (0: unlimited or default)\n",
		p.Name, p.KeyPerMinute, p.KeyBurst, p.TenantPerMinute, p.TenantBurst, p.IPPerMinute, p.IPBurst, p.MonthlyQuota, p.LatticeMaxPoints, p.LatticeTimeoutMS)
	return nil
}

func runAuditVerify(c *adminCtx, pos []string) error {
	var opts audit.VerifyOptions
	if c.expectHead != "" {
		h, err := audit.ParseHead(c.expectHead)
		if err != nil {
			return cmdline.UsageError{Err: err}
		}
		opts.ExpectHead = &h
	}
	rep, err := audit.VerifyWith(c.ctx, c.st, opts)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(rep); err != nil {
			return err
		}
	}
	if !rep.OK {
		return fmt.Errorf("audit chain broken at seq %d (%s): %s; the %d entries before it are intact", rep.FirstBad, rep.Kind, rep.Problem, rep.Entries)
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "audit chain OK: %d entries, head %s\n", rep.Entries, rep.Head)
	}
	return nil
}

func runAuditExport(c *adminCtx, pos []string) error {
	var f store.AuditFilter
	if c.tenant != "" {
		t, err := c.st.GetTenant(c.ctx, c.tenant)
		if errors.Is(err, store.ErrNotFound) {
			t, err = c.st.GetTenantByName(c.ctx, c.tenant)
		}
		if errors.Is(err, store.ErrNotFound) {
			// Deleted tenants keep their entries: accept an id the store
			// no longer knows.
			t, err = &store.Tenant{ID: c.tenant}, nil
		}
		if err != nil {
			return err
		}
		f.TenantID = t.ID
	}
	if c.since != "" {
		t, err := time.Parse(time.RFC3339Nano, c.since)
		if err != nil {
			return err // checked before
		}
		f.Since = t
	}
	var w io.Writer = c.stdout
	var file *os.File
	if c.out != "" {
		var err error
		if file, err = os.OpenFile(c.out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		w = file
	}
	n, err := audit.Export(c.ctx, c.st, f, w)
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	if file != nil {
		fmt.Fprintf(c.stderr, "exported %d audit entries to %s\n", n, c.out)
	}
	return nil
}

// runBootstrap sets up again a store that was set up before and has no
// tenant left (auth.ErrSetUpBefore).
func runBootstrap(c *adminCtx, _ []string) error {
	f, err := c.as.Recover(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"tenant": f.Tenant, "user": f.User, "key": f.Key, "key_env": f.KeyEnv})
	}
	f.WriteNotice(c.stdout, "")
	return nil
}

func runUsage(c *adminCtx, _ []string) error {
	q := admin.UsageQuery{Tenant: c.tenant, Upstream: c.upstream, Tool: c.tool, Granularity: c.granularity}
	// check validated the times.
	if c.from != "" {
		q.From, _ = time.Parse(time.RFC3339Nano, c.from)
	}
	if c.to != "" {
		q.To, _ = time.Parse(time.RFC3339Nano, c.to)
	}
	rep, err := c.ops.Usage(c.ctx, q)
	if err != nil {
		return err
	}
	switch {
	case c.json:
		return c.printJSON(rep)
	case c.csv:
		return admin.WriteUsageCSV(c.stdout, rep)
	}
	rows := make([][]string, len(rep.Rows))
	for i, r := range rep.Rows {
		actor := r.Actor
		if actor == "" {
			actor = "-"
		}
		rows[i] = []string{r.Period, r.TenantName, actor + " (" + r.ActorKind + ")", r.Upstream, r.Tool, r.Outcome, strconv.FormatInt(r.Count, 10)}
	}
	if err := c.table("PERIOD\tTENANT\tCALLER\tUPSTREAM\tTOOL\tOUTCOME\tCALLS", rows); err != nil {
		return err
	}
	note := ""
	if rep.Truncated {
		note = " (truncated: narrow the range or the filters)"
	}
	_, err = fmt.Fprintf(c.stdout, "total: %d calls%s\n", rep.Total, note)
	return err
}

func runTenantErase(c *adminCtx, pos []string) error {
	t, err := c.ops.GetTenant(c.ctx, pos[0])
	if admin.IsCode(err, admin.CodeNotFound) {
		// EraseTenant says whether it was erased before, and audits.
		_, err = c.ops.EraseTenant(c.ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if err := c.ops.CanDeleteTenant(c.ctx, t.Name); err != nil {
		return err
	}
	if err := c.confirm(c.cmd, fmt.Sprintf("ERASE tenant %s (id %s): remove everything it owns, erase the personal fields of its audit entries and destroy its data key? This can not be undone", t.Name, t.ID), c.yes); err != nil {
		return err
	}
	er, err := c.ops.EraseTenant(c.ctx, t.ID)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(er)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(er.Rows)) {
		if er.Rows[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, er.Rows[k]))
		}
	}
	fmt.Fprintf(c.stdout, "erased tenant %s (id %s) at %s: removed %s; erased the personal fields of %d audit entries; destroyed its data key\n",
		er.Name, er.TenantID, cmdline.Time(er.ErasedAt), strings.Join(parts, ", "), er.AuditEntries)
	return nil
}

func runTenantExport(c *adminCtx, pos []string) error {
	out := c.out
	if out == "-" {
		m, err := c.ops.ExportTenant(c.ctx, pos[0], c.stdout, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "exported tenant %s: %s\n", m.Tenant.Name, exportSummary(m))
		return nil
	}
	if out != "" {
		if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--out %s: its directory does not exist", out)
		}
	}
	var tmp *os.File
	var createErr error
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	write := writerFunc(func(b []byte) (int, error) {
		if tmp == nil {
			return 0, createErr
		}
		return tmp.Write(b)
	})
	m, err := c.ops.ExportTenant(c.ctx, pos[0], write, func(t *store.Tenant) {
		if out == "" {
			out = admin.ExportFileName(t.Name, time.Now())
		}
		// Beside the destination, so the rename is atomic; mode 0600.
		if tmp, createErr = os.CreateTemp(filepath.Dir(out), ".mcpedge-export-*.zip"); createErr != nil {
			tmp, createErr = nil, fmt.Errorf("writing the archive beside %s: %w", out, createErr)
		}
	})
	if createErr != nil {
		return createErr
	}
	if err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	tmp = nil
	if c.json {
		return c.printJSON(map[string]any{"file": out, "manifest": m})
	}
	fmt.Fprintf(c.stdout, "exported tenant %s to %s: %s\n", m.Tenant.Name, out, exportSummary(m))
	return nil
}

// exportSummary counts an archive's records by file, for people.
func exportSummary(m *tenantexport.Manifest) string {
	var parts []string
	for _, f := range m.Files {
		if f.Records > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", strings.TrimSuffix(f.Name, ".jsonl"), f.Records))
		}
	}
	if len(parts) == 0 {
		return "no records"
	}
	return strings.Join(parts, ", ")
}

// writerFunc is an io.Writer from a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
