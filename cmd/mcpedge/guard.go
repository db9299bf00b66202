package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/changebus"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/guard"
	"github.com/mcpedge/mcpedge/internal/quarantine"
	"github.com/mcpedge/mcpedge/internal/store"
)

// errFlagged is returned when a sample has flagged items: exit status 1.
var errFlagged = errors.New("flagged")

// guardTestCmd is `mcpedge guard test FILE`: the guard's rules run against a
// sample as the gateway would run them (internal/guard.CheckSample).
func (a *app) guardTestCmd() *cobra.Command {
	var (
		cf        *configFlags
		rulesPath string
		personal  bool
		asJSON    bool
	)
	c := &cobra.Command{
		Use:   "test FILE",
		Short: "Run the guard's rules against a sample and print each verdict with the rule that fired",
		Long: `Run the guard's rules against a sample, as the gateway would, and print
each verdict with the rule that fired. FILE ("-": standard input) is
  - tool, prompt, resource or template definitions (a tools/list result, a
    JSON-RPC response carrying one, or an array of definitions): judged by
    the poisoning detector;
  - a tools/call, prompts/get or resources/read result, or a sampling or
    elicitation request: what the results guard would remove or redact;
  - anything else: judged as one description and scanned as one result.
The rules are the built-in ones plus those of the rule file [guard] rules
names in --config, or of --rules. The exit status is 1 when something is
flagged, 0 when the sample is clean.`,
		Args: posArgs("FILE"),
		RunE: func(_ *cobra.Command, pos []string) error {
			s, err := cf.source()
			if err != nil {
				return err
			}
			var rf *guard.RuleFile
			switch {
			case rulesPath != "" && s.path != "":
				return cmdline.Usagef("--rules and --config cannot be used together")
			case rulesPath != "":
				if rf, err = guard.LoadRuleFile(rulesPath); err != nil {
					return err
				}
			case s.path != "":
				cfg, err := s.load()
				if err != nil {
					return err
				}
				if cfg.Guard.Rules != nil {
					rf = cfg.Guard.Rules.File
				}
			}
			rs, err := guard.NewRuleSet(rf)
			if err != nil {
				return err
			}
			var data []byte
			if pos[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(a.stdin, 64<<20))
			} else {
				data, err = os.ReadFile(pos[0])
			}
			if err != nil {
				return err
			}
			rep := guard.CheckSample(data, rs, guard.NewRedactor(&guard.RedactOptions{PersonalData: personal}))
			if asJSON {
				if err := cmdline.PrintJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				out := a.stdout
				fmt.Fprintf(out, "%s: %s, rules %s\n", pos[0], rep.Format, rep.RulesVersion)
				for _, it := range rep.Items {
					fmt.Fprintln(out, it.String())
					for _, f := range it.Findings {
						fmt.Fprintf(out, "  %s: %s", f.Rule, f.Explain)
						if f.Match != "" {
							fmt.Fprintf(out, " — matched %q", f.Match)
						}
						fmt.Fprintln(out)
					}
				}
				fmt.Fprintf(out, "%d of %d flagged\n", rep.Flagged, len(rep.Items))
			}
			if rep.Flagged > 0 {
				return errFlagged
			}
			return nil
		},
	}
	cf = addConfigFlags(c)
	c.Flags().StringVar(&rulesPath, "rules", "", "an operator's rule `FILE` (instead of the one --config names)")
	c.Flags().BoolVar(&personal, "personal-data", false, "also redact e-mail addresses, phone and card numbers in results")
	jsonFlag(c, &asJSON)
	return c
}

// startQuarantine turns the release of quarantined items on for g (see
// docs/guardrails.md, "Quarantine"): verdicts are loaded from the store,
// new quarantines written to it in the background, and decisions made
// elsewhere picked up every quarantine.DefaultPoll. Call it before
// g.Start; stop writes what is not written yet (within 5 s).
func startQuarantine(ctx context.Context, g *gateway.Gateway, sec *securityStack, reg prometheus.Registerer, log *slog.Logger) (b *quarantine.Book, stop func()) {
	b = quarantine.New(quarantine.Options{Store: sec.Store, Audit: sec.Audit.Record, Registerer: reg, Log: log, Changed: g.QuarantineChanged})
	loadCtx, cancel := context.WithTimeout(ctx, pinLoadTimeout)
	if err := b.Load(loadCtx); err != nil {
		log.Error("guard: quarantine verdicts not loaded; quarantined items stay withheld until they are", "err", err.Error())
	}
	cancel()
	g.SetQuarantine(b)
	sec.Changes.On(changebus.TopicQuarantine, func() {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), pinLoadTimeout)
			defer cancel()
			if err := b.Refresh(ctx); err != nil {
				log.Warn("guard: verdicts not reloaded after another process's decision; the next poll does it", "err", err.Error())
			}
		}()
	})
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { b.Run(runCtx); close(done) }()
	return b, func() {
		stopRun()
		<-done
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Flush(flushCtx); err != nil {
			log.Error("guard: quarantines not written before exit; they are recorded again when next seen", "err", err.Error())
		}
	}
}

// quarantineRefresher is admin.OpsOptions.QuarantineChanged for b: a
// decision made through this process's admin API is served at once.
func quarantineRefresher(b *quarantine.Book, changes *changebus.Bus, log *slog.Logger) func(context.Context) {
	if b == nil {
		return nil
	}
	return func(ctx context.Context) {
		if err := b.Refresh(ctx); err != nil {
			log.Warn("guard: verdicts not reloaded after a decision; the next poll does it", "err", err.Error())
		}
		changes.Announce(ctx, changebus.TopicQuarantine) // the other replicas reload now (with Redis)
	}
}

func runGuardList(c *adminCtx, _ []string) error {
	state := ""
	if c.pending {
		state = store.VerdictQuarantined
	}
	vs, err := c.ops.ListQuarantine(c.ctx, c.upstream, state)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(vs)
	}
	rows := make([][]string, len(vs))
	for i, v := range vs {
		rows[i] = []string{v.Upstream, v.Kind, v.Name, v.State, strings.Join(v.Rules, ","), short(v.Hash), cmdline.Time(v.SeenAt), cmdline.Time(v.DecidedAt)}
	}
	return c.table("UPSTREAM\tKIND\tNAME\tSTATE\tRULES\tHASH\tSEEN\tDECIDED", rows)
}

func runGuardShow(c *adminCtx, pos []string) error {
	v, err := c.ops.GetQuarantined(c.ctx, pos[0], pos[1], pos[2])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.stdout, "%s %q of upstream %s: %s\nhash:  %s\nrules: %s (rules %s)\nseen:  %s\n", v.Kind, v.Name, v.Upstream, v.State,
		v.Hash, strings.Join(v.Rules, ", "), v.RulesVersion, cmdline.Time(v.SeenAt))
	for _, f := range v.Findings {
		fmt.Fprintf(c.stdout, "  %s: %s", f.Rule, f.Explain)
		if f.Match != "" {
			fmt.Fprintf(c.stdout, " — matched %q", f.Match)
		}
		fmt.Fprintln(c.stdout)
	}
	fmt.Fprintf(c.stdout, "\n%s\n", v.Text)
	return nil
}

func runGuardApprove(c *adminCtx, pos []string) error {
	return c.decideQuarantined(pos, c.ops.ApproveQuarantined)
}

func runGuardReject(c *adminCtx, pos []string) error {
	return c.decideQuarantined(pos, c.ops.RejectQuarantined)
}

func (c *adminCtx) decideQuarantined(pos []string, do func(context.Context, admin.QuarantineDecision) (*store.GuardVerdict, error)) error {
	v, err := do(c.ctx, admin.QuarantineDecision{Upstream: pos[0], Kind: pos[1], Name: pos[2], Hash: c.hash})
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(v)
	}
	if v.State == store.VerdictApproved {
		fmt.Fprintf(c.stdout, "approved: %s %q of upstream %s is served in definition %s\n", v.Kind, v.Name, v.Upstream, v.Hash)
	} else {
		fmt.Fprintf(c.stdout, "rejected: %s %q of upstream %s stays withheld\n", v.Kind, v.Name, v.Upstream)
	}
	fmt.Fprintf(c.stdout, "running gateways on this store apply it within %s\n", quarantine.DefaultPoll)
	return nil
}
