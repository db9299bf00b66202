package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// The store's secrets (the API-key HMAC key, the JWT signing key) are
// sealed with a master key that is not in the database; see
// docs/security.md. open.MasterKey decides where it comes from, and
// openStore is how the gateway and every CLI command open the store.

// openStore opens the configured store with its secrets' master key
// (open.MasterKey decides where it comes from).
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	return open.Configured(ctx, cfg)
}

func (a *app) secretsCmd() *cobra.Command {
	// open loads the configuration and opens the store with its master
	// key, for a command.
	openSealed := func(ctx context.Context, cf *configFlags) (store.SealedSecrets, sealbox.KeySource, func() error, error) {
		_, cfg, err := cf.load()
		if err != nil {
			return nil, nil, nil, err
		}
		key, err := open.MasterKey(cfg)
		if err != nil {
			return nil, nil, nil, err
		}
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		st, err := open.OpenWithKey(openCtx, cfg.Store.URL, cfg.Server.DataDir, key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("opening the store: %w", err)
		}
		sealed, ok := st.(store.SealedSecrets)
		if !ok {
			_ = st.Close()
			return nil, nil, nil, fmt.Errorf("the %s store does not seal its secrets", st.Kind())
		}
		return sealed, key, st.Close, nil
	}
	var (
		statusCF, rekeyCF     *configFlags
		statusJSON, rekeyJSON bool
	)
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the key ring the store's secrets are sealed with (no key material)",
		Long: `Show the key ring the secrets are sealed with: key ids, when each was made,
how many messages it has sealed (of its limit), which is active, and how
many secrets each seals now. No key material is shown.`,
		Args: posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			sealed, key, closeStore, err := openSealed(ctx, statusCF)
			if err != nil {
				return err
			}
			defer closeStore()
			r, err := sealed.SecretRing(ctx)
			if err != nil {
				return err
			}
			if statusJSON {
				return cmdline.PrintJSON(a.stdout, struct {
					MasterKey string `json:"master_key"`
					*store.SecretRing
				}{key.String(), r})
			}
			fmt.Fprintf(a.stdout, "master key: %s\n%d secrets, %d not sealed yet\n\n", key, r.Secrets, r.Plaintext)
			rows := make([][]string, 0, len(r.Keys))
			for _, k := range r.Keys {
				active := ""
				if k.Active {
					active = "yes"
				}
				rows = append(rows, []string{strconv.FormatUint(uint64(k.ID), 10), cmdline.Time(k.Created),
					strconv.FormatUint(k.Messages, 10), strconv.FormatUint(k.MaxMessages, 10), strconv.Itoa(k.Secrets), active})
			}
			return cmdline.PrintTable(a.stdout, "KEY\tCREATED\tMESSAGES\tLIMIT\tSECRETS\tACTIVE", rows)
		},
	}
	statusCF = addConfigFlags(status)
	jsonFlag(status, &statusJSON)
	rekey := &cobra.Command{
		Use:   "rekey",
		Short: "Add a new data key, make it active, and seal every secret again with it",
		Long: `Add a new data key, make it active, and seal every secret again with it.
Works while gateways run on the same store; they learn of the new key when
they meet it. The master key stays the same.`,
		Args: posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			sealed, key, closeStore, err := openSealed(ctx, rekeyCF)
			if err != nil {
				return err
			}
			defer closeStore()
			id, n, err := sealed.RekeySecrets(ctx)
			if err != nil {
				if id != 0 {
					return fmt.Errorf("key %d is active, but sealing the secrets again stopped: %w (run secrets rekey again to finish)", id, err)
				}
				return err
			}
			if rekeyJSON {
				return cmdline.PrintJSON(a.stdout, map[string]any{"active_key": id, "master_key": key.String(), "resealed": n})
			}
			fmt.Fprintf(a.stdout, "key %d is active (master key from %s); sealed %d secrets again\n", id, key, n)
			return nil
		},
	}
	rekeyCF = addConfigFlags(rekey)
	jsonFlag(rekey, &rekeyJSON)
	g := group("secrets", "Show or rotate the key ring the store's secrets are sealed with", status, rekey)
	g.Long = `Commands for the store's sealed secrets (the API-key HMAC key, the JWT signing key).
The master key is [store] key / key_file / key_env: by default $MCPEDGE_STORE_KEY
(base64 of 32 bytes) if set, else store.key beside a SQLite database. A PostgreSQL
store needs the variable or key_file, the same on every replica (docs/operations.md).`
	return g
}
