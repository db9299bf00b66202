package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/changebus"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
)

// The administration commands work on the store the configuration names
// ([store] url, [server] data_dir), through the same admin.Ops as the
// REST API, so the same rules apply; they act as an operator owner and
// are audited as actor "cli". They are safe while a gateway runs on the
// same store: revocations reach it through the store (and Redis, when
// configured), other changes through the store's policy version.

// passwordEnv is where `user create` takes the password from first.
const passwordEnv = "MCPEDGE_PASSWORD"

// adminSpec declares one administration command.
type adminSpec struct {
	use, short, long, example string
	// args names the positional arguments it requires, in order.
	args []string
	// flags declares the command's own flags (besides --config and
	// --mcp-servers) into c.
	flags func(f *pflag.FlagSet, c *adminCtx)
	// check validates the flags and arguments before anything is
	// opened; its errors are usage errors.
	check func(c *adminCtx, args []string) error
	run   func(c *adminCtx, args []string) error
	// raw commands do not get Ops (migrate, audit): no bootstrap, no audit
	// logger of their own.
	raw bool
	// recovery: authentication and the audit log, no bootstrap and no
	// Ops (mcpedge bootstrap).
	recovery bool
	// queue: Ops also reaches this machine's offline queue, when there is
	// one (tenant export and erasure).
	queue bool
}

// adminCtx is what a command runs with.
type adminCtx struct {
	*app
	cmd *cobra.Command
	ctx context.Context // carries the CLI principal
	cfg *config.Config
	st  store.Store
	as  *auth.Service
	ops *admin.Ops
	// changes announces the command's changes to running gateways (with
	// [redis]; nil: they see them at their next poll).
	changes *changebus.Bus
	// audit is the audit log of commands that are not raw.
	audit *audit.Logger
	// values of the flags commands declare
	tenant, name, role, scopes, expires, plan, upstreams, out, since string
	expectHead, upstream, hash                                       string
	from, to, tool, granularity                                      string
	json, operator, pending, yes, csv, erase                         bool
	limits                                                           planFlags
	webhook                                                          webhookFlags
}

// adminCommand turns a spec into a command.
func (a *app) adminCommand(s adminSpec) *cobra.Command {
	c := &adminCtx{app: a}
	var cf *configFlags
	cmd := &cobra.Command{
		Use:     s.use,
		Short:   s.short,
		Long:    s.long,
		Example: s.example,
		Args:    posArgs(s.args...),
		PreRunE: func(_ *cobra.Command, args []string) error {
			if s.check == nil {
				return nil
			}
			if err := s.check(c, args); err != nil {
				if cmdline.IsUsage(err) {
					return err
				}
				return cmdline.UsageError{Err: err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if _, c.cfg, err = cf.load(); err != nil {
				return err
			}
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			closeAll, err := c.open(ctx, s)
			if err != nil {
				return err
			}
			before := c.policyVersion(ctx)
			err = s.run(c, args)
			if after := c.policyVersion(ctx); after != before {
				// Tenants, keys, plans, virtual servers, rules: every
				// gateway on the store reloads its policy now.
				c.changes.Announce(ctx, changebus.TopicPolicy)
			}
			if cerr := closeAll(); cerr != nil && err == nil {
				err = cerr
			}
			return err
		},
	}
	c.cmd = cmd
	cf = addConfigFlags(cmd)
	if s.flags != nil {
		s.flags(cmd.Flags(), c)
	}
	// Completion of the values that are fixed.
	if cmd.Flags().Lookup("role") != nil {
		_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"viewer", "member", "admin", "owner"}, cobra.ShellCompDirectiveNoFileComp))
	}
	if cmd.Flags().Lookup("scopes") != nil {
		_ = cmd.RegisterFlagCompletionFunc("scopes", cobra.FixedCompletions([]string{"mcp:list", "mcp:call", "admin:read", "admin:write"}, cobra.ShellCompDirectiveNoFileComp|cobra.ShellCompDirectiveNoSpace))
	}
	if kinds := argChoices(s.args, 1); kinds != nil {
		cmd.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return kinds, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	} else {
		cmd.ValidArgsFunction = cobra.NoFileCompletions
	}
	return cmd
}

// argChoices are the values the i-th argument's name lists in parentheses
// ("the KIND (tool, prompt or template)"), for completion; nil if none.
func argChoices(args []string, i int) []cobra.Completion {
	if i >= len(args) {
		return nil
	}
	_, list, ok := strings.Cut(args[i], "(")
	list, _, _ = strings.Cut(list, ")")
	if !ok || list == "" {
		return nil
	}
	var out []cobra.Completion
	for _, part := range strings.Split(strings.ReplaceAll(list, " or ", ", "), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// adminCmds declares the administration commands.
func (a *app) adminCmds() []*cobra.Command {
	tenantFlag := func(f *pflag.FlagSet, c *adminCtx) {
		f.StringVar(&c.tenant, "tenant", "", "the tenant's `NAME` or id")
	}
	jsonF := func(f *pflag.FlagSet, c *adminCtx) { f.BoolVar(&c.json, "json", false, "print JSON instead of text") }
	yesF := func(f *pflag.FlagSet, c *adminCtx) {
		f.BoolVarP(&c.yes, "yes", "y", false, "do it without asking (scripts; required when stdin is not a terminal)")
	}
	both := func(fs ...func(*pflag.FlagSet, *adminCtx)) func(*pflag.FlagSet, *adminCtx) {
		return func(f *pflag.FlagSet, c *adminCtx) {
			for _, d := range fs {
				d(f, c)
			}
		}
	}
	hashF := func(f *pflag.FlagSet, c *adminCtx) {
		f.StringVar(&c.hash, "hash", "", "the `HASH` of the definition that was reviewed (pins diff and guard show print it); empty: whatever is offered now")
	}
	needTenant := func(c *adminCtx, _ []string) error {
		if c.tenant == "" {
			return cmdline.Usagef("%s: --tenant is required", cmdName(c.cmd))
		}
		return nil
	}
	roles := "`ROLE`: viewer, member, admin or owner"
	pinArgs := []string{"the UPSTREAM", "the KIND (tool, prompt or template)", "the NAME"}

	tenant := group("tenant", "Create, list and remove tenants",
		a.adminCommand(adminSpec{use: "create NAME", short: "Create a tenant and its virtual server \"all\"", args: []string{"the tenant NAME"},
			long: `Create a tenant and its virtual server "all", which serves the upstreams
given with --upstreams (default: every upstream). Upstream names the
configuration does not define are accepted with a warning naming them (the
configuration and the tenants change independently).`,
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.plan, "plan", "", "the tenant's `PLAN` (default "+config.DefaultPlan+")")
				f.StringVar(&c.upstreams, "upstreams", "*", "upstreams of its virtual server \"all\": comma-separated `NAMES`, or * for every upstream")
				f.BoolVar(&c.operator, "operator", false, "make it an operator tenant, which administers the whole gateway")
			}), run: runTenantCreate}),
		a.adminCommand(adminSpec{use: "ls", short: "List tenants", flags: jsonF, run: runTenantList}),
		a.adminCommand(adminSpec{use: "rm NAME", short: "Remove a tenant and everything it owns (asks first); --erase also erases it", args: []string{"the tenant NAME"},
			long: `Remove a tenant and everything it owns: users, keys, virtual servers, rules,
lattices, usage, devices, sessions, its data key (its audit entries stay, readable).
Asks for confirmation on a terminal; give --yes in scripts. The last operator
tenant can not be removed.

With --erase the tenant is erased: removed as above and, in the same
transaction, its audit entries lose their personal fields (actor, target,
client address, detail; the hash chain stays valid and mcpedge audit verify
keeps passing), its data key is destroyed (what it sealed, such as offline-queue
entries on other machines, can not be opened any more), and the erasure is
recorded and audited. This machine's offline-queue entries of the tenant are
removed. It can not be undone. See docs/design/erasure.md.`,
			example: `  mcpedge tenant export acme --out acme.zip
  mcpedge tenant rm acme --erase --yes`, queue: true,
			flags: both(yesF, jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.BoolVar(&c.erase, "erase", false, "erase the tenant: also its audit entries' personal fields and its data key (can not be undone)")
			}), run: runTenantRemove}),
		a.adminCommand(adminSpec{use: "export NAME", short: "Write everything the gateway holds about a tenant to a ZIP archive", args: []string{"the tenant NAME"},
			long: `Write everything mcpedge holds about a tenant to a ZIP archive of JSON Lines files
with a manifest (format version, tenant, time, each file's SHA-256 and record
count): the tenant, its users, API keys' metadata (never secrets or hashes),
sessions' metadata, virtual servers, rules, usage, lattices, devices, audit
entries, and its entries in this machine's offline queue. The archive is
written to a temporary file beside --out and renamed when complete (mode 0600:
it holds personal data); "--out -" writes it to stdout. Audited
(tenant.export). Format: docs/platform.md.`,
			queue: true,
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.out, "out", "", "write to this `FILE` (default: mcpedge-export-NAME-TIME.zip in the current directory; - for stdout)")
			}), run: runTenantExport}),
	)
	key := group("key", "Create, list, revoke and rotate API keys",
		a.adminCommand(adminSpec{use: "create --tenant NAME", short: "Create an API key; prints it alone on the last line", check: needTenant,
			flags: both(tenantFlag, jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.name, "name", admin.DefaultKeyName, "the key's `NAME`")
				f.StringVar(&c.role, "role", admin.DefaultKeyRole, roles)
				f.StringVar(&c.scopes, "scopes", "", "comma-separated `SCOPES` to limit the key to ("+admin.KnownScopesText()+"); none: every right of the role")
				f.StringVar(&c.expires, "expires", "", "`LIFETIME` such as 720h or 30d (default: never expires)")
			}), run: runKeyCreate}),
		a.adminCommand(adminSpec{use: "ls --tenant NAME", short: "List a tenant's keys (never their secrets)", check: needTenant, flags: both(tenantFlag, jsonF), run: runKeyList}),
		a.adminCommand(adminSpec{use: "revoke ID|PREFIX", short: "Revoke a key at once, on every gateway of the store (asks first)", args: []string{"the key's ID or PREFIX"},
			flags: both(tenantFlag, jsonF, yesF), run: runKeyRevoke}),
		a.adminCommand(adminSpec{use: "rotate ID|PREFIX", short: "Replace a key; prints the successor alone on the last line", args: []string{"the key's ID or PREFIX"},
			flags: both(tenantFlag, jsonF), run: runKeyRotate}),
	)
	user := group("user", "Create, list and remove users",
		a.adminCommand(adminSpec{use: "create --tenant NAME USER", short: "Create a user; the password comes from $" + passwordEnv + ", else the first line of stdin",
			args: []string{"the USER name"}, check: needTenant,
			flags: both(tenantFlag, jsonF, func(f *pflag.FlagSet, c *adminCtx) { f.StringVar(&c.role, "role", "member", roles) }), run: runUserCreate}),
		a.adminCommand(adminSpec{use: "ls --tenant NAME", short: "List a tenant's users", check: needTenant, flags: both(tenantFlag, jsonF), run: runUserList}),
		a.adminCommand(adminSpec{use: "rm --tenant NAME USER", short: "Remove a user and end their sessions (asks first)", args: []string{"the USER name"}, check: needTenant,
			flags: both(tenantFlag, yesF), run: runUserRemove}),
	)
	plan := group("plan", "List plans and set their limits",
		a.adminCommand(adminSpec{use: "ls", short: "List the plans and their limits", flags: jsonF, run: runPlanList}),
		a.adminCommand(adminSpec{use: "set NAME", short: "Create a plan or change its limits (only the flags given change)", args: []string{"the plan NAME"},
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) { c.limits.declare(f) }),
			check: func(c *adminCtx, _ []string) error { return c.limits.check() }, run: runPlanSet}),
	)
	pins := group("pins", "Review the pinned definitions of tools, prompts and resource templates",
		a.adminCommand(adminSpec{use: "ls", short: "List pins and the changes their upstreams offer",
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.upstream, "upstream", "", "only this upstream's pins (`NAME`)")
				f.BoolVar(&c.pending, "pending", false, "only pins with a change awaiting approval")
			}), run: runPinsList}),
		a.adminCommand(adminSpec{use: "diff UPSTREAM KIND NAME", short: "Show the offered change of one pin as a diff (KIND: tool, prompt or template)", args: pinArgs, flags: jsonF, run: runPinsDiff}),
		a.adminCommand(adminSpec{use: "approve UPSTREAM KIND NAME", short: "Pin the offered definition (give --hash: a later change is refused)", args: pinArgs, flags: both(hashF, jsonF), run: runPinsApprove}),
		a.adminCommand(adminSpec{use: "reject UPSTREAM KIND NAME", short: "Keep the pinned definition; the same change stays rejected", args: pinArgs, flags: both(hashF, jsonF), run: runPinsReject}),
	)
	auditG := group("audit", "Verify and export the audit log",
		a.adminCommand(adminSpec{use: "verify", short: "Check the audit log's hash chain; exit status 1 and the first problem when it is broken", raw: true,
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.expectHead, "expect-head", "", "a head printed by an earlier verify (`SEQ:HASH`), kept outside the database: the chain must still reach it unchanged")
			}),
			check: func(c *adminCtx, _ []string) error {
				if c.expectHead == "" {
					return nil
				}
				_, err := audit.ParseHead(c.expectHead)
				return err
			}, run: runAuditVerify}),
		a.adminCommand(adminSpec{use: "export", short: "Write audit entries as JSON lines", raw: true,
			flags: func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.tenant, "tenant", "", "only this tenant's entries (`NAME` or id)")
				f.StringVar(&c.since, "since", "", "only entries at or after this `TIME` (RFC 3339, e.g. 2026-11-01T00:00:00Z)")
				f.StringVar(&c.out, "out", "", "write to this `FILE` (mode 0600) instead of stdout")
			},
			check: func(c *adminCtx, _ []string) error {
				if c.since == "" {
					return nil
				}
				if _, err := time.Parse(time.RFC3339Nano, c.since); err != nil {
					return cmdline.Usagef("audit export: --since %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", c.since)
				}
				return nil
			}, run: runAuditExport}),
	)
	migrate := a.adminCommand(adminSpec{use: "migrate", short: "Bring the store's schema up to date (serve does this at start)", raw: true, flags: jsonF, run: runMigrate})
	boot := a.adminCommand(adminSpec{use: "bootstrap", short: "Set up a store again whose every tenant was removed (recovery)", recovery: true,
		long: `Set up a store again that was set up before but has no tenant left: create the
operator tenant ([auth] bootstrap_tenant), its owner user and an owner API key,
as the first start does, and print the key. mcpedge never does this by itself
once a store has been set up: every other command refuses such a store and
names this one. See docs/cli.md, "Recovering a store".`,
		flags: jsonF, run: runBootstrap})
	guardArgs := []string{"the UPSTREAM", "the KIND (tool, prompt, template or resource)", "the NAME"}
	guardG := group("guard", "Test the guard's rules on a sample; review the items it quarantined",
		a.guardTestCmd(),
		a.adminCommand(adminSpec{use: "ls", short: "List the items the description guard quarantined (descriptions = \"quarantine\")",
			flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
				f.StringVar(&c.upstream, "upstream", "", "only this upstream's items (`NAME`)")
				f.BoolVar(&c.pending, "pending", false, "only items still quarantined")
			}), run: runGuardList}),
		a.adminCommand(adminSpec{use: "show UPSTREAM KIND NAME", short: "Show a quarantined item: the rules that fired and the text judged", args: guardArgs, flags: jsonF, run: runGuardShow}),
		a.adminCommand(adminSpec{use: "approve UPSTREAM KIND NAME", short: "Release it in the definition reviewed (a changed one is quarantined again)", args: guardArgs, flags: both(hashF, jsonF), run: runGuardApprove}),
		a.adminCommand(adminSpec{use: "reject UPSTREAM KIND NAME", short: "Keep it withheld; the same definition stays rejected", args: guardArgs, flags: both(hashF, jsonF), run: runGuardReject}),
	)
	usage := a.adminCommand(adminSpec{use: "usage", short: "Report metered tool calls per period, tenant, caller, upstream, tool and outcome",
		long: `Report the tool calls usage metering counted ([metering], docs/platform.md):
per hour (or month), tenant, caller, upstream, tool and outcome, from the
store. Without --from and --to: the current month (UTC) so far. A running
gateway adds its counts to the store every [metering] flush_interval, so the
last interval's calls may not be in the report yet. The same report as
GET /api/usage.`,
		example: `  mcpedge usage --tenant acme --granularity month
  mcpedge usage --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --csv > november.csv`,
		flags: both(jsonF, func(f *pflag.FlagSet, c *adminCtx) {
			f.StringVar(&c.tenant, "tenant", "", "only this tenant (`NAME` or id); default every tenant")
			f.StringVar(&c.from, "from", "", "count hours starting at or after this `TIME` (RFC 3339)")
			f.StringVar(&c.to, "to", "", "count hours starting before this `TIME` (RFC 3339)")
			f.StringVar(&c.upstream, "upstream", "", "only this upstream's tools (`NAME`)")
			f.StringVar(&c.tool, "tool", "", "only this tool (`NAME` at its upstream)")
			f.StringVar(&c.granularity, "granularity", admin.GranularityHour, "`hour` or month")
			f.BoolVar(&c.csv, "csv", false, "print CSV (period, tenant, tenant_id, actor, actor_kind, upstream, tool, outcome, count)")
		}),
		check: func(c *adminCtx, _ []string) error {
			if c.json && c.csv {
				return cmdline.Usagef("usage: give --json or --csv, not both")
			}
			if c.granularity != admin.GranularityHour && c.granularity != admin.GranularityMonth {
				return cmdline.Usagef("usage: --granularity must be hour or month, got %q", c.granularity)
			}
			for name, v := range map[string]string{"from": c.from, "to": c.to} {
				if v == "" {
					continue
				}
				if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
					return cmdline.Usagef("usage: --%s %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", name, v)
				}
			}
			return nil
		}, run: runUsage})
	if f := usage.Flags().Lookup("granularity"); f != nil {
		_ = usage.RegisterFlagCompletionFunc("granularity", cobra.FixedCompletions([]string{admin.GranularityHour, admin.GranularityMonth}, cobra.ShellCompDirectiveNoFileComp))
	}
	return []*cobra.Command{migrate, tenant, key, user, plan, pins, guardG, auditG, usage, boot, a.webhookCmd(), a.billingCmd()}
}

// open opens the store and, unless s.raw, what Ops needs: Redis (so that
// revocations reach running gateways at once), authentication and the
// audit log. On an empty store it first creates the bootstrap operator
// tenant, as `mcpedge serve` would, so that a tenant made here first does
// not leave the gateway without an administrator.
func (c *adminCtx) open(ctx context.Context, s adminSpec) (closeAll func() error, err error) {
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var closers []func() error
	// A local name: the named result is nil by the time the deferred
	// cleanup of a failed open runs.
	closeFn := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = closeFn()
		}
	}()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := openStore(openCtx, c.cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	c.st = st
	closers = append(closers, c.st.Close)
	c.ctx = admin.CLIContext(ctx)
	if s.raw {
		return closeFn, nil
	}
	var rdb *redis.Client
	if c.cfg.Redis.URL != "" {
		opt, err := redis.ParseURL(c.cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		rdb = redis.NewClient(opt)
		closers = append(closers, rdb.Close)
		c.changes = changebus.NewAnnouncer(rdb, log)
	}
	lg := audit.NewLogger(c.st, log, audit.LoggerOptions{})
	c.audit = lg
	closers = append(closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := lg.Close(ctx); err != nil {
			return fmt.Errorf("writing the audit log: %w", err)
		}
		return nil
	})
	ao := auth.Options{Store: c.st, Config: c.cfg.Auth, Audit: lg.Record, Log: log}
	if rdb != nil {
		ao.Redis = rdb
	}
	as, err := auth.New(openCtx, ao)
	if err != nil {
		return nil, fmt.Errorf("starting authentication: %w", err)
	}
	closers = append(closers, as.Close)
	c.as = as
	if s.recovery {
		return closeFn, nil
	}
	if err := bootstrap(openCtx, as, c.cfg, firstStart{Notice: c.stderr}); err != nil {
		return nil, fmt.Errorf("first-start setup: %w", err)
	}
	var tenantQueue admin.TenantQueue
	if s.queue {
		q, err := openQueueIfPresent(openCtx, c.cfg, c.st)
		if err != nil {
			return nil, fmt.Errorf("opening the offline queue: %w", err)
		}
		if q != nil {
			tenantQueue = q
			closers = append(closers, q.Close)
		}
	}
	oo := admin.OpsOptions{Store: c.st, Credentials: as, Audit: lg, Plans: c.cfg.Plans, Log: log, Upstreams: configuredUpstreams(c.cfg),
		// Pin and quarantine decisions: the gateways reload them now, and
		// their clients get list_changed at once.
		PinsChanged:       func(ctx context.Context) { c.changes.Announce(ctx, changebus.TopicPins) },
		QuarantineChanged: func(ctx context.Context) { c.changes.Announce(ctx, changebus.TopicQuarantine) },
		TenantQueue:       tenantQueue}
	if wh := openWebhooks(c.cfg, c.st, log); wh != nil {
		// Webhook commands, and events of what the CLI changes (keys):
		// queued in the store, delivered by a running gateway.
		oo.Webhooks, oo.Events = wh, wh
	}
	c.ops = admin.NewOps(oo)
	return closeFn, nil
}

// policyVersion is the store's policy version for an administration
// command that can change it (0 otherwise, or when it cannot be read: the
// gateways' poll then finds the change).
func (c *adminCtx) policyVersion(ctx context.Context) int64 {
	if c.changes == nil || c.ops == nil || c.st == nil {
		return 0
	}
	v, err := c.st.PolicyVersion(ctx)
	if err != nil {
		return 0
	}
	return v
}

// configuredUpstreams is admin.OpsOptions.Upstreams for a configuration.
func configuredUpstreams(cfg *config.Config) func() []string {
	return func() []string {
		names := make([]string, len(cfg.Upstreams))
		for i, u := range cfg.Upstreams {
			names[i] = u.Name
		}
		return names
	}
}

// printJSON prints v indented.
func (c *adminCtx) printJSON(v any) error { return cmdline.PrintJSON(c.stdout, v) }

// table prints rows under a header, aligned.
func (c *adminCtx) table(header string, rows [][]string) error {
	return cmdline.PrintTable(c.stdout, header, rows)
}

// readPassword takes the password from $MCPEDGE_PASSWORD, else from the
// first line of stdin; never from a flag, where other users of the
// machine could read it in the process list.
func (c *adminCtx) readPassword() (string, error) {
	if pw := os.Getenv(passwordEnv); pw != "" {
		return pw, nil
	}
	if cmdline.Terminal(c.stdin) {
		fmt.Fprint(c.stderr, "password (it will be shown as you type; set $"+passwordEnv+" to avoid that): ")
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from stdin (or set $%s): %w", passwordEnv, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
