package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/mcpedge/mcpedge/internal/hub/attest"
	"github.com/mcpedge/mcpedge/internal/hub/edge"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
)

// hubService is the hub side of `mcpedge serve`: every gateway whose
// [auth] mode is "required" is a hub for the edges that enroll with it
// (docs/hub.md). With auth off its endpoints answer 503 saying why.
func hubService(cfg *config.Config, sec *securityStack, log *slog.Logger) *hub.Service {
	o := hub.Options{
		Store: sec.Store, Credentials: sec.Auth, Audit: sec.Audit, Verify: attest.Verifier(sec.EKRoots, log), MakeCredential: devicekey.MakeCredential,
		ClientIP: sec.ClientIP.From, Log: log, Events: sec.events(),
	}
	if cfg.Auth.Mode != config.AuthRequired {
		o.Disabled = `this gateway cannot be a hub: [auth] mode is "off", and devices sign in with credentials`
	} else if sec.EKRoots == nil {
		// Every gateway can be a hub, but most never are: the warning is
		// for those that are (devices or enrollment tokens in the store),
		// and for the first TPM enrollment (attest.Verifier). A fresh
		// gateway's first start stays quiet about it.
		if hub.InUse(sec.Store) {
			log.Warn(attest.EKNotChecked)
		} else {
			log.Debug(attest.EKNotChecked)
		}
	} else {
		log.Info("hub: TPM devices enroll only with an endorsement key certificate from a trusted manufacturer", "ek_roots", cfg.HubServer.EKRoots, "roots", sec.EKRoots.Roots, "intermediates", sec.EKRoots.Intermediates)
	}
	return hub.New(o)
}

// loadEKRoots reads [hub_server] ek_roots, if set, for `mcpedge serve`:
// a file that cannot be used stops the start rather than leaving the hub
// without the check the operator asked for.
func loadEKRoots(cfg *config.Config) (*devicekey.EKRoots, error) {
	if cfg.HubServer.EKRoots == "" {
		return nil, nil
	}
	r, err := devicekey.LoadEKRoots(cfg.HubServer.EKRoots)
	if err != nil {
		return nil, fmt.Errorf("[hub_server] ek_roots: %w", err)
	}
	return r, nil
}

// edgeLink is the edge side of `mcpedge serve` when [hub] url is set.
type edgeLink struct {
	link *edge.Link
	key  devicekey.Key
	hub  config.Hub
	log  *slog.Logger
}

// startEdge opens the device key, starts the link to the hub and adds its
// synthetic upstream ("hub") to cfg. It returns nil without [hub] url.
func startEdge(ctx context.Context, cfg *config.Config, sec *securityStack, m *telemetry.Metrics, certMetrics *tlsconf.Metrics, log *slog.Logger) (*edgeLink, error) {
	if !cfg.Hub.Enabled() {
		return nil, nil
	}
	key, err := openDeviceKey(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("[hub] url is set, so this gateway needs its device key: %w", err)
	}
	attest := func(nonce []byte) (json.RawMessage, error) {
		a, err := key.Attest(nonce)
		if err != nil {
			return nil, err
		}
		return json.Marshal(a)
	}
	var activate func(blob, secret []byte) ([]byte, error)
	if a, ok := key.(devicekey.CredentialActivator); ok {
		activate = a.ActivateCredential
	}
	l, err := edge.New(edge.Options{
		Hub: cfg.Hub, Key: key, Attest: attest, Activate: activate, Audit: sec.Store,
		Gatherer: m.Registry, Registerer: m.Registry, Log: log.With("component", "hub-link"),
		CertMetrics: certMetrics,
	})
	if err == nil {
		err = l.Start(ctx)
	}
	if err != nil {
		_ = key.Close()
		return nil, err
	}
	e := &edgeLink{link: l, key: key, hub: cfg.Hub, log: log}
	e.augment(cfg)
	log.Info("edge of a hub", "hub", cfg.Hub.URL, "device", key.ID(), "key", key.Kind())
	return e, nil
}

// augment adds the hub's synthetic upstream to a (re)loaded
// configuration; [hub] itself is read once at start.
func (e *edgeLink) augment(c *config.Config) {
	if e == nil {
		return
	}
	if fmt.Sprint(c.Hub) != fmt.Sprint(e.hub) {
		e.log.Warn("[hub] changed; restart to apply it")
	}
	c.Upstreams = append(c.Upstreams, e.link.Upstream())
}

// Close stops the link and closes the device key.
func (e *edgeLink) Close() {
	if e == nil {
		return
	}
	e.link.Close()
	_ = e.key.Close()
}

func (a *app) hubCmd() *cobra.Command {
	// openSt loads the configuration and opens the store for a command.
	openSt := func(ctx context.Context, cf *configFlags) (store.Store, error) {
		_, cfg, err := cf.load()
		if err != nil {
			return nil, err
		}
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := openStore(openCtx, cfg)
		if err != nil {
			return nil, fmt.Errorf("opening the store: %w", err)
		}
		return st, nil
	}
	var (
		tokCF, devCF, approveCF, pcrsCF *configFlags
		tenant, tokName                 string
		uses                            int
		ttl                             time.Duration
		tokJSON, devJSON, changeJSON    bool
	)
	tokCreate := &cobra.Command{
		Use:   "create --tenant NAME",
		Short: "Create an enrollment token for edges of a tenant; prints it alone on the last line",
		Args:  posArgs(),
		PreRunE: func(*cobra.Command, []string) error {
			if tenant == "" {
				return cmdline.Usagef("hub token create: --tenant NAME is required")
			}
			if err := hub.CheckTokenRequest(uses, ttl, tokName); err != nil {
				return cmdline.Usagef("hub token create: %v", err)
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			st, err := openSt(ctx, tokCF)
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := st.GetTenantByName(ctx, tenant)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("tenant %q does not exist: create it first (mcpedge tenant create %s)", tenant, tenant)
			}
			if err != nil {
				return err
			}
			tok, err := hub.CreateToken(ctx, st, t.ID, tokName, uses, ttl, time.Now())
			if err != nil {
				return err
			}
			if err := cliAudit(ctx, st, t.ID, "hub.token.create", tok.ID, map[string]any{"uses": tok.Uses, "expires_at": tok.ExpiresAt}); err != nil {
				return fmt.Errorf("auditing the new token: %w", err)
			}
			if tokJSON {
				return cmdline.PrintJSON(a.stdout, tok)
			}
			fmt.Fprintf(a.stdout, "enrollment token %s for tenant %s: %d use(s), expires %s\n", tok.ID, t.Name, tok.Uses, tok.ExpiresAt.Format(time.RFC3339))
			fmt.Fprintf(a.stdout, "set it on the edge as [hub] enroll_token (e.g. MCPEDGE_ENROLL_TOKEN); it is shown only now:\n%s\n", tok.Token)
			return nil
		},
	}
	tokCF = addConfigFlags(tokCreate)
	tokCreate.Flags().StringVar(&tenant, "tenant", "", "the tenant `NAME` devices enrolled with the token join")
	tokCreate.Flags().StringVar(&tokName, "name", "", fmt.Sprintf("a `LABEL` for the token (at most %d bytes)", hub.MaxTokenNameLen))
	tokCreate.Flags().IntVar(&uses, "uses", 1, fmt.Sprintf("how many devices may enroll with the token (1 to %d)", hub.MaxTokenUses))
	tokCreate.Flags().DurationVar(&ttl, "ttl", hub.DefaultTokenTTL, "how long the token is valid (at most a year)")
	jsonFlag(tokCreate, &tokJSON)

	change := func(use, short string, want []string, cfp **configFlags) *cobra.Command {
		c := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  posArgs(want...),
			PreRunE: func(c *cobra.Command, args []string) error {
				if len(args) == 2 {
					if _, err := hub.ParsePCRPolicy(args[1]); err != nil {
						return cmdline.UsageError{Err: err}
					}
				}
				return nil
			},
			RunE: func(c *cobra.Command, args []string) error {
				ctx, stop := interruptible(c.Context())
				defer stop()
				st, err := openSt(ctx, *cfp)
				if err != nil {
					return err
				}
				defer st.Close()
				policy := ""
				if len(args) == 2 {
					policy, _ = hub.ParsePCRPolicy(args[1])
				}
				return hubDeviceChange(ctx, st, cmdName(c), args[0], policy, changeJSON, a.stdout)
			},
		}
		*cfp = addConfigFlags(c)
		jsonFlag(c, &changeJSON)
		return c
	}
	approve := change("approve ID", "Re-approve a TPM device whose PCR values changed legitimately (firmware update)", []string{"the device ID"}, &approveCF)
	pcrs := change("pcrs ID enrolled|off", "Set a TPM device's PCR policy: enrolled (the default) or off (recorded, not enforced)", []string{"the device ID", "the policy (enrolled or off)"}, &pcrsCF)
	pcrs.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 1 {
			return []cobra.Completion{hub.PCRPolicyEnrolled, hub.PCRPolicyOff}, cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	rm := a.adminCommand(adminSpec{use: "rm ID", short: "Remove an enrolled device and revoke its credential (asks first)", args: []string{"the device ID"},
		flags: func(f *pflag.FlagSet, c *adminCtx) {
			f.BoolVarP(&c.yes, "yes", "y", false, "do it without asking (scripts; required when stdin is not a terminal)")
		},
		run: func(c *adminCtx, args []string) error {
			d, err := c.st.GetDevice(c.ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("device %q is not enrolled with this hub (see mcpedge hub devices)", args[0])
			}
			if err != nil {
				return err
			}
			if err := c.confirm(c.cmd, fmt.Sprintf("remove device %s (%s, tenant %s)? It can not sign in again until it enrolls anew", d.ID, d.Name, c.tenantName(d.TenantID)), c.yes); err != nil {
				return err
			}
			if err := hub.RemoveDevice(c.ctx, c.st, c.as.RevokeKey, d, slog.New(slog.NewTextHandler(c.stderr, nil))); err != nil {
				return err
			}
			if err := cliAudit(c.ctx, c.st, d.TenantID, "hub.device.delete", d.ID, map[string]any{"name": d.Name}); err != nil {
				return fmt.Errorf("auditing the removal: %w", err)
			}
			fmt.Fprintf(c.stdout, "removed device %s and revoked its credential\n", d.ID)
			return nil
		}})
	devices := &cobra.Command{
		Use:   "devices",
		Short: "List the enrolled devices and their last contact; approve, pcrs and rm change one",
		Long: `List the enrolled devices: id, name, tenant, kind, attested, enrolled, last contact,
address, PCR policy and why the last sign-in was refused.`,
		Args: posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			st, err := openSt(ctx, devCF)
			if err != nil {
				return err
			}
			defer st.Close()
			return hubDevices(ctx, st, devJSON, a.stdout)
		},
	}
	devCF = addConfigFlags(devices)
	jsonFlag(devices, &devJSON)
	devices.AddCommand(approve, pcrs, rm)
	g := group("hub", "Enroll edge gateways with this hub and manage their devices (docs/hub.md)",
		group("token", "Enrollment tokens for edge gateways", tokCreate), devices)
	return g
}

func hubDevices(ctx context.Context, st store.Store, asJSON bool, stdout io.Writer) error {
	views, err := hub.ListDevices(ctx, st, "")
	if err != nil {
		return err
	}
	if asJSON {
		return cmdline.PrintJSON(stdout, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(stdout, "no devices enrolled")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTENANT\tKIND\tATTESTED\tENROLLED\tLAST CONTACT\tADDRESS\tQUEUED\tPCRS\tREFUSED")
	for _, d := range views {
		att := "no"
		if d.Attested {
			att = "yes"
		}
		last := "never"
		if !d.LastContact.IsZero() {
			last = d.LastContact.Format(time.RFC3339) + " (" + time.Since(d.LastContact).Round(time.Second).String() + " ago)"
		}
		queued := "-"
		if d.QueueDepth != nil {
			queued = fmt.Sprint(*d.QueueDepth)
		}
		pcrs := "-"
		if d.Kind == "tpm" {
			pcrs = hub.PCRPolicyEnrolled
			if d.PCRPolicy != "" {
				pcrs = d.PCRPolicy
			}
			if d.Reapprove {
				pcrs += " (re-approved)"
			}
		}
		refused := "-"
		if d.Refusal != "" {
			refused = d.RefusedAt.Format(time.RFC3339) + " " + d.Refusal
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.TenantName, d.Kind, att, d.EnrolledAt.Format(time.RFC3339), last, d.LastAddr, queued, pcrs, refused)
	}
	return tw.Flush()
}

// hubDeviceChange re-approves a device's PCR values or sets its PCR
// policy, on the store, audited as the REST endpoints are.
func hubDeviceChange(ctx context.Context, st store.Store, name, id, policy string, asJSON bool, stdout io.Writer) error {
	d, err := st.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("device %q is not enrolled with this hub (see mcpedge hub devices)", id)
	}
	if err != nil {
		return err
	}
	action, detail := "hub.device.reapprove", map[string]any{}
	if name == "hub devices approve" {
		if err := hub.Reapprove(ctx, st, d); err != nil {
			return fmt.Errorf("device %s: %w", id, err)
		}
	} else {
		if err := hub.SetPCRPolicy(ctx, st, d, policy); err != nil {
			return err
		}
		action, detail["pcr_policy"] = "hub.device.pcr_policy", cmp.Or(policy, hub.PCRPolicyEnrolled)
	}
	if err := cliAudit(ctx, st, d.TenantID, action, d.ID, detail); err != nil {
		return fmt.Errorf("auditing the change: %w", err)
	}
	if asJSON {
		views, err := hub.ListDevices(ctx, st, d.TenantID)
		if err != nil {
			return err
		}
		for _, v := range views {
			if v.ID == d.ID {
				return cmdline.PrintJSON(stdout, v)
			}
		}
		return fmt.Errorf("device %s: gone after the change", d.ID)
	}
	if name == "hub devices approve" {
		fmt.Fprintf(stdout, "device %s re-approved: the PCR values of its next sign-in are accepted and recorded\n", d.ID)
	} else {
		fmt.Fprintf(stdout, "device %s: PCR policy %s\n", d.ID, cmp.Or(policy, hub.PCRPolicyEnrolled))
	}
	return nil
}

// cliAudit records a hub command's change (actor cli) and waits until it
// is written.
func cliAudit(ctx context.Context, st store.Store, tenantID, action, target string, detail map[string]any) error {
	al := audit.NewLogger(st, slog.New(slog.DiscardHandler), audit.LoggerOptions{})
	b, _ := json.Marshal(detail)
	al.Record(ctx, &store.AuditEntry{TenantID: tenantID, Actor: "cli", ActorKind: "cli", Action: action, Target: target, Outcome: "ok", Detail: b})
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return al.Close(closeCtx)
}

// hubAPIRoute reports whether an /api request is the hub's, which bypasses
// the admin API's policy reload (telemetry is frequent and changes no
// policy).
func hubAPIRoute(r *http.Request) bool { return hub.Owns(r.URL.Path) }
