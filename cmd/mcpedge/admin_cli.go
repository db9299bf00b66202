package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/redis/go-redis/v9"
)

// The administration commands work on the store the configuration names
// ([store] url, [server] data_dir), through the same admin.Ops as the
// REST API, so the same rules apply; they act as an operator owner and
// are audited as actor "cli". They are safe while a gateway runs on the
// same store: revocations reach it through the store (and Redis, when
// configured), other changes through the store's policy version.

const adminUsage = `Administration commands (each takes --config FILE or --mcp-servers FILE to find the store):
  migrate
        Bring the store's schema up to date.
  tenant create NAME [--plan PLAN] [--upstreams a,b|*] [--operator]
  tenant ls [--json]
  tenant rm NAME
  key create --tenant NAME [--name N] [--role ROLE] [--scopes a,b] [--expires DURATION]
        Prints the new key alone on the last line.
  key ls --tenant NAME [--json]
  key revoke ID|PREFIX [--tenant NAME]
  key rotate ID|PREFIX [--tenant NAME]
        Prints the successor key alone on the last line.
  user create --tenant NAME USER [--role ROLE]
        The password comes from $MCPEDGE_PASSWORD, else the first line of stdin.
  user ls --tenant NAME [--json]
  user rm --tenant NAME USER
  plan ls [--json]
  plan set NAME [--key-per-minute N] [--key-burst N] [--tenant-per-minute N] [--tenant-burst N]
           [--ip-per-minute N] [--ip-burst N] [--monthly-quota N] [--lattice-max-points N] [--lattice-timeout D]
  pins ls [--upstream NAME] [--pending] [--json]
        Pinned tools, prompts and resource templates, and the changes their upstreams offer.
  pins diff UPSTREAM KIND NAME [--json]
        The offered change of one pin as a diff (KIND: tool, prompt or template).
  pins approve UPSTREAM KIND NAME [--hash HASH]
        Pin the offered definition (give the hash pins diff printed: a later change is refused).
  pins reject UPSTREAM KIND NAME [--hash HASH]
        Keep the pinned definition; the same change stays rejected.
  guard ls [--upstream NAME] [--pending] [--json]
        List the items the description guard quarantined (descriptions = "quarantine").
  guard show UPSTREAM KIND NAME [--json]
        Show a quarantined item: the rules that fired and the text judged.
  guard approve UPSTREAM KIND NAME [--hash HASH]
        Release it in the definition reviewed (a changed one is quarantined again).
  guard reject UPSTREAM KIND NAME [--hash HASH]
        Keep the pinned definition; the same change stays rejected.
  audit verify
        Check the audit log's hash chain; exit status 1 and the first problem when it is broken.
  audit export [--tenant T] [--since RFC3339] [--out FILE]
        Write audit entries as JSON lines.
`

// passwordEnv is where `user create` takes the password from first.
const passwordEnv = "MCPEDGE_PASSWORD"

// adminCmd is one administration command.
type adminCmd struct {
	name string // "tenant create"
	args string // usage after the name
	run  func(c *adminCtx, fs *flag.FlagSet, args []string) error
	// flags declares the command's own flags.
	flags func(fs *flag.FlagSet, c *adminCtx)
	// raw commands do not get Ops (migrate, audit): no bootstrap, no audit
	// logger of their own.
	raw bool
}

// adminCtx is what a command runs with.
type adminCtx struct {
	ctx    context.Context // carries the CLI principal
	cfg    *config.Config
	st     store.Store
	ops    *admin.Ops
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// values of the flags commands declare
	tenant, name, role, scopes, expires, plan, upstreams, out, since string
	expectHead, upstream, hash                                       string
	json, operator, pending                                          bool
	limits                                                           planFlags
}

var adminCmds = []adminCmd{
	{name: "migrate", run: runMigrate, raw: true},
	{name: "tenant create", args: "NAME [--plan PLAN] [--upstreams a,b|*] [--operator]", run: runTenantCreate, flags: func(fs *flag.FlagSet, c *adminCtx) {
		fs.StringVar(&c.plan, "plan", "", "the tenant's `plan` (default "+config.DefaultPlan+")")
		fs.StringVar(&c.upstreams, "upstreams", "*", "upstreams of its virtual server \"all\": comma-separated `names`, or * for every upstream")
		fs.BoolVar(&c.operator, "operator", false, "make it an operator tenant, which administers the whole gateway")
	}},
	{name: "tenant ls", args: "[--json]", run: runTenantList, flags: jsonFlag},
	{name: "tenant rm", args: "NAME", run: runTenantRemove},
	{name: "key create", args: "--tenant NAME [--name N] [--role ROLE] [--scopes a,b] [--expires DURATION]", run: runKeyCreate, flags: func(fs *flag.FlagSet, c *adminCtx) {
		tenantFlag(fs, c)
		fs.StringVar(&c.name, "name", admin.DefaultKeyName, "the key's `name`")
		fs.StringVar(&c.role, "role", admin.DefaultKeyRole, "`role`: viewer, member, admin or owner")
		fs.StringVar(&c.scopes, "scopes", "", "comma-separated `scopes` to limit the key to (mcp:list, mcp:call, admin:read, admin:write); none: every right of the role")
		fs.StringVar(&c.expires, "expires", "", "lifetime such as 720h or 30d (default: never expires)")
	}},
	{name: "key ls", args: "--tenant NAME [--json]", run: runKeyList, flags: func(fs *flag.FlagSet, c *adminCtx) { tenantFlag(fs, c); jsonFlag(fs, c) }},
	{name: "key revoke", args: "ID|PREFIX [--tenant NAME]", run: runKeyRevoke, flags: tenantFlag},
	{name: "key rotate", args: "ID|PREFIX [--tenant NAME]", run: runKeyRotate, flags: tenantFlag},
	{name: "user create", args: "--tenant NAME USER [--role ROLE]", run: runUserCreate, flags: func(fs *flag.FlagSet, c *adminCtx) {
		tenantFlag(fs, c)
		fs.StringVar(&c.role, "role", "member", "`role`: viewer, member, admin or owner")
	}},
	{name: "user ls", args: "--tenant NAME [--json]", run: runUserList, flags: func(fs *flag.FlagSet, c *adminCtx) { tenantFlag(fs, c); jsonFlag(fs, c) }},
	{name: "user rm", args: "--tenant NAME USER", run: runUserRemove, flags: tenantFlag},
	{name: "plan ls", args: "[--json]", run: runPlanList, flags: jsonFlag},
	{name: "plan set", args: "NAME [--key-per-minute N] … [--lattice-timeout D]", run: runPlanSet, flags: func(fs *flag.FlagSet, c *adminCtx) { c.limits.declare(fs) }},
	{name: "pins ls", args: "[--upstream NAME] [--pending] [--json]", run: runPinsList, flags: func(fs *flag.FlagSet, c *adminCtx) {
		fs.StringVar(&c.upstream, "upstream", "", "only this upstream's pins (`name`)")
		fs.BoolVar(&c.pending, "pending", false, "only pins with a change awaiting approval")
		jsonFlag(fs, c)
	}},
	{name: "pins diff", args: "UPSTREAM KIND NAME [--json]", run: runPinsDiff, flags: jsonFlag},
	{name: "pins approve", args: "UPSTREAM KIND NAME [--hash HASH]", run: runPinsApprove, flags: hashFlag},
	{name: "pins reject", args: "UPSTREAM KIND NAME [--hash HASH]", run: runPinsReject, flags: hashFlag},
	{name: "guard ls", args: "[--upstream NAME] [--pending] [--json]", run: runGuardList, flags: func(fs *flag.FlagSet, c *adminCtx) {
		fs.StringVar(&c.upstream, "upstream", "", "only this upstream's items (`name`)")
		fs.BoolVar(&c.pending, "pending", false, "only items awaiting a decision")
		jsonFlag(fs, c)
	}},
	{name: "guard show", args: "UPSTREAM KIND NAME [--json]", run: runGuardShow, flags: jsonFlag},
	{name: "guard approve", args: "UPSTREAM KIND NAME [--hash HASH]", run: runGuardApprove, flags: hashFlag},
	{name: "guard reject", args: "UPSTREAM KIND NAME [--hash HASH]", run: runGuardReject, flags: hashFlag},
	{name: "audit verify", args: "[--expect-head SEQ:HASH]", run: runAuditVerify, raw: true, flags: func(fs *flag.FlagSet, c *adminCtx) {
		fs.StringVar(&c.expectHead, "expect-head", "", "a head printed by an earlier verify (`SEQ:HASH`), kept outside the database: the chain must still reach it unchanged")
	}},
	{name: "audit export", args: "[--tenant T] [--since RFC3339] [--out FILE]", run: runAuditExport, raw: true, flags: func(fs *flag.FlagSet, c *adminCtx) {
		fs.StringVar(&c.tenant, "tenant", "", "only this tenant's entries (`name` or id)")
		fs.StringVar(&c.since, "since", "", "only entries at or after this `time` (RFC 3339, e.g. 2026-11-01T00:00:00Z)")
		fs.StringVar(&c.out, "out", "", "write to this `file` (mode 0600) instead of stdout")
	}},
}

func tenantFlag(fs *flag.FlagSet, c *adminCtx) {
	fs.StringVar(&c.tenant, "tenant", "", "the tenant's `name` or id")
}

func hashFlag(fs *flag.FlagSet, c *adminCtx) {
	fs.StringVar(&c.hash, "hash", "", "the offered `hash` that was reviewed (pins diff prints it); empty: whatever is offered now")
}

func jsonFlag(fs *flag.FlagSet, c *adminCtx) {
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
}

// cmdAdmin runs an administration command: args start with its first
// word ("tenant", "key", …).
func cmdAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cmd *adminCmd
	for i := range adminCmds {
		words := strings.Fields(adminCmds[i].name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			cmd = &adminCmds[i]
			args = args[len(words):]
			break
		}
	}
	if cmd == nil {
		fmt.Fprint(stderr, adminUsage)
		switch {
		case len(args) >= 2 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help"):
			return flag.ErrHelp
		case len(args) < 2 || strings.HasPrefix(args[1], "-"):
			return usageError{fmt.Errorf("%s: give a subcommand (see the usage above)", args[0])}
		}
		return usageError{fmt.Errorf("unknown command \"%s %s\" (see the usage above)", args[0], args[1])}
	}
	c := &adminCtx{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := configFlags(fs)
	if cmd.flags != nil {
		cmd.flags(fs, c)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mcpedge %s %s [--config FILE | --mcp-servers FILE]\n\nFlags:\n", cmd.name, cmd.args)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	s, err := src()
	if err != nil {
		return err
	}
	if c.cfg, err = s.load(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	closeAll, err := c.open(ctx, cmd.raw)
	if err != nil {
		return err
	}
	err = cmd.run(c, fs, pos)
	if cerr := closeAll(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// open opens the store and, unless raw, what Ops needs: Redis (so that
// revocations reach running gateways at once), authentication and the
// audit log. On an empty store it first creates the bootstrap operator
// tenant, as `mcpedge serve` would, so that a tenant made here first does
// not leave the gateway without an administrator.
func (c *adminCtx) open(ctx context.Context, raw bool) (closeAll func() error, err error) {
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
	if raw {
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
	}
	lg := audit.NewLogger(c.st, log, audit.LoggerOptions{})
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
	if _, err := as.Bootstrap(openCtx, c.stderr); err != nil {
		return nil, fmt.Errorf("first-start setup: %w", err)
	}
	c.ops = admin.NewOps(admin.OpsOptions{Store: c.st, Credentials: as, Audit: lg, Plans: c.cfg.Plans, Log: log})
	return closeFn, nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments ("tenant create acme --plan pro"), and returns the
// positional ones. After "--" everything is positional.
// parseSubcommand parses a subcommand's flags and positional arguments:
// usage is the synopsis printed before the flags on -h or a bad flag,
// want names the positional arguments it requires (none when empty). A
// bad flag or argument is a usageError; -h is flag.ErrHelp.
func parseSubcommand(fs *flag.FlagSet, usage string, args []string, want ...string) ([]string, error) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if err := positional(fs.Name(), pos, want...); err != nil {
		return nil, err
	}
	return pos, nil
}

func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := args[:len(args)-len(rest)]; len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// positional checks the number of positional arguments.
func positional(name string, pos []string, want ...string) error {
	if len(pos) != len(want) {
		if len(pos) > len(want) {
			return usageError{fmt.Errorf("%s: unexpected argument %q", name, pos[len(want)])}
		}
		return usageError{fmt.Errorf("%s: missing %s", name, want[len(pos)])}
	}
	return nil
}

func needTenant(name, tenant string) error {
	if tenant == "" {
		return usageError{fmt.Errorf("%s: --tenant is required", name)}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// printJSON prints v indented.
func (c *adminCtx) printJSON(v any) error { return printJSON(c.stdout, v) }

// table prints rows under a header, aligned.
func (c *adminCtx) table(header string, rows [][]string) error {
	return printTable(c.stdout, header, rows)
}

// printJSON prints v to w indented: every command's --json output.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable prints rows under a tab-separated header, aligned: every
// command's table output.
func printTable(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// readPassword takes the password from $MCPEDGE_PASSWORD, else from the
// first line of stdin; never from a flag, where other users of the
// machine could read it in the process list.
func (c *adminCtx) readPassword() (string, error) {
	if pw := os.Getenv(passwordEnv); pw != "" {
		return pw, nil
	}
	if f, ok := c.stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(c.stderr, "password (it will be shown as you type; set $"+passwordEnv+" to avoid that): ")
		}
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from stdin (or set $%s): %w", passwordEnv, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
