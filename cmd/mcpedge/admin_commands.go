package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/store"
)

func runMigrate(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("migrate", pos); err != nil {
		return err
	}
	// open.Open has migrated the schema already.
	v, err := c.st.SchemaVersion(c.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s store is at schema version %d\n", c.st.Kind(), v)
	return nil
}

func runTenantCreate(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("tenant create", pos, "the tenant NAME"); err != nil {
		return err
	}
	ups := splitList(c.upstreams)
	t, err := c.ops.CreateTenant(c.ctx, admin.TenantSpec{Name: pos[0], Plan: c.plan, Upstreams: ups, Operator: c.operator})
	if err != nil {
		return err
	}
	kind := "tenant"
	if t.Operator {
		kind = "operator tenant"
	}
	fmt.Fprintf(c.stdout, "created %s %s (id %s) on plan %s; virtual server %q serves upstreams %s\n", kind, t.Name, t.ID, t.Plan, admin.DefaultVirtualServer, strings.Join(ups, ","))
	return nil
}

func runTenantList(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("tenant ls", pos); err != nil {
		return err
	}
	ts, err := c.ops.ListTenants(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(ts)
	}
	rows := make([][]string, len(ts))
	for i, t := range ts {
		rows[i] = []string{t.Name, t.ID, t.Plan, yesNo(t.Operator), yesNo(t.Disabled), strings.Join(t.IPAllowlist, ","), fmtTime(t.CreatedAt)}
	}
	return c.table("NAME\tID\tPLAN\tOPERATOR\tDISABLED\tIP ALLOWLIST\tCREATED", rows)
}

func runTenantRemove(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("tenant rm", pos, "the tenant NAME"); err != nil {
		return err
	}
	if err := c.ops.DeleteTenant(c.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed tenant %s and everything it owned (its audit entries stay)\n", pos[0])
	return nil
}

func runKeyCreate(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("key create", pos); err != nil {
		return err
	}
	if err := needTenant("key create", c.tenant); err != nil {
		return err
	}
	nk, err := c.ops.CreateKey(c.ctx, c.tenant, admin.KeySpec{Name: c.name, Role: c.role, Scopes: splitList(c.scopes), ExpiresIn: c.expires})
	if err != nil {
		return err
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
	fmt.Fprintf(c.stdout, "%s key %s (id %s, prefix %s) in tenant %s: role %s, scopes %s, expires %s\n", verb, k.Name, k.ID, k.Prefix, c.tenantName(k.TenantID), k.Role, scopes, fmtTimeOr(k.ExpiresAt, "never"))
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

func fmtTimeOr(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return fmtTime(t)
}

func runKeyList(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("key ls", pos); err != nil {
		return err
	}
	if err := needTenant("key ls", c.tenant); err != nil {
		return err
	}
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
		state := "active"
		switch {
		case !k.RevokedAt.IsZero():
			state = "revoked"
		case !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now):
			state = "expired"
		case k.RotatedTo != "":
			state = "rotated"
		}
		scopes := strings.Join(k.Scopes, ",")
		if scopes == "" {
			scopes = "-"
		}
		rows[i] = []string{k.Prefix, k.ID, k.Name, k.Role, scopes, state, fmtTime(k.ExpiresAt), fmtTime(k.LastUsedAt), fmtTime(k.CreatedAt)}
	}
	return c.table("PREFIX\tID\tNAME\tROLE\tSCOPES\tSTATE\tEXPIRES\tLAST USED\tCREATED", rows)
}

func runKeyRevoke(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("key revoke", pos, "the key's ID or PREFIX"); err != nil {
		return err
	}
	k, err := c.ops.RevokeKey(c.ctx, c.tenant, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked key %s (id %s, prefix %s) of tenant %s\n", k.Name, k.ID, k.Prefix, c.tenantName(k.TenantID))
	return nil
}

func runKeyRotate(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("key rotate", pos, "the key's ID or PREFIX"); err != nil {
		return err
	}
	nk, err := c.ops.RotateKey(c.ctx, c.tenant, pos[0])
	if err != nil {
		return err
	}
	c.printNewKey("rotated: new", nk)
	return nil
}

func runUserCreate(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("user create", pos, "the USER name"); err != nil {
		return err
	}
	if err := needTenant("user create", c.tenant); err != nil {
		return err
	}
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
	fmt.Fprintf(c.stdout, "created user %s (id %s) in tenant %s with role %s\n", u.Name, u.ID, c.tenant, u.Role)
	return nil
}

func runUserList(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("user ls", pos); err != nil {
		return err
	}
	if err := needTenant("user ls", c.tenant); err != nil {
		return err
	}
	us, err := c.ops.ListUsers(c.ctx, c.tenant)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(us)
	}
	rows := make([][]string, len(us))
	for i, u := range us {
		rows[i] = []string{u.Name, u.ID, u.Role, yesNo(u.Disabled), fmtTime(u.CreatedAt)}
	}
	return c.table("NAME\tID\tROLE\tDISABLED\tCREATED", rows)
}

func runUserRemove(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("user rm", pos, "the USER name"); err != nil {
		return err
	}
	if err := needTenant("user rm", c.tenant); err != nil {
		return err
	}
	if err := c.ops.DeleteUser(c.ctx, c.tenant, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed user %s from tenant %s and ended their sessions\n", pos[0], c.tenant)
	return nil
}

func runPlanList(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("plan ls", pos); err != nil {
		return err
	}
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
	fs     *flag.FlagSet
	values map[string]*int64
	// timeout is --lattice-timeout, a duration.
	timeout time.Duration
}

var planLimitFlags = []struct{ flag, help string }{
	{"key-per-minute", "requests per minute per key or user"},
	{"key-burst", "burst per key"},
	{"tenant-per-minute", "requests per minute per tenant"},
	{"tenant-burst", "burst per tenant"},
	{"ip-per-minute", "requests per minute per client address"},
	{"ip-burst", "burst per address"},
	{"monthly-quota", "tools/call per tenant per calendar month"},
	{"lattice-max-points", "largest lattice"},
}

func (p *planFlags) declare(fs *flag.FlagSet) {
	p.fs, p.values = fs, map[string]*int64{}
	for _, f := range planLimitFlags {
		p.values[f.flag] = fs.Int64(f.flag, 0, f.help+" (`N`; 0: unlimited)")
	}
	fs.DurationVar(&p.timeout, "lattice-timeout", 0, "lattice operation timeout (`duration`; 0: the [lattice] default)")
}

func (p *planFlags) limits() (admin.PlanLimits, int) {
	var l admin.PlanLimits
	set := map[string]bool{}
	p.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	ptr := func(name string) *int64 {
		if !set[name] {
			return nil
		}
		return p.values[name]
	}
	l.KeyPerMinute, l.KeyBurst = ptr("key-per-minute"), ptr("key-burst")
	l.TenantPerMinute, l.TenantBurst = ptr("tenant-per-minute"), ptr("tenant-burst")
	l.IPPerMinute, l.IPBurst = ptr("ip-per-minute"), ptr("ip-burst")
	l.MonthlyQuota, l.LatticeMaxPoints = ptr("monthly-quota"), ptr("lattice-max-points")
	if set["lattice-timeout"] {
		ms := p.timeout.Milliseconds()
		l.LatticeTimeoutMS = &ms
	}
	n := 0
	for _, f := range planLimitFlags {
		if set[f.flag] {
			n++
		}
	}
	if set["lattice-timeout"] {
		n++
	}
	return l, n
}

func runPlanSet(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("plan set", pos, "the plan NAME"); err != nil {
		return err
	}
	l, n := c.limits.limits()
	if n == 0 {
		return usageError{errors.New("plan set: give at least one limit, e.g. --key-per-minute 100")}
	}
	p, err := c.ops.PutPlan(c.ctx, pos[0], l)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "plan %s: key %d/min burst %d, tenant %d/min burst %d, ip %d/min burst %d, monthly quota %d, lattice max points %d, lattice timeout %dms (0: unlimited or default)\n",
		p.Name, p.KeyPerMinute, p.KeyBurst, p.TenantPerMinute, p.TenantBurst, p.IPPerMinute, p.IPBurst, p.MonthlyQuota, p.LatticeMaxPoints, p.LatticeTimeoutMS)
	return nil
}

func runAuditVerify(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("audit verify", pos); err != nil {
		return err
	}
	var opts audit.VerifyOptions
	if c.expectHead != "" {
		h, err := audit.ParseHead(c.expectHead)
		if err != nil {
			return usageError{err}
		}
		opts.ExpectHead = &h
	}
	rep, err := audit.VerifyWith(c.ctx, c.st, opts)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("audit chain broken at seq %d (%s): %s; the %d entries before it are intact", rep.FirstBad, rep.Kind, rep.Problem, rep.Entries)
	}
	fmt.Fprintf(c.stdout, "audit chain OK: %d entries, head %s\n", rep.Entries, rep.Head)
	return nil
}

func runAuditExport(c *adminCtx, _ *flag.FlagSet, pos []string) error {
	if err := positional("audit export", pos); err != nil {
		return err
	}
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
			return usageError{fmt.Errorf("audit export: --since %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", c.since)}
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
