package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// The store's secrets (the API-key HMAC key, the JWT signing key) are
// sealed with a master key that is not in the database; see
// docs/security.md. open.MasterKey decides where it comes from, and
// openStore is how the gateway and every CLI command open the store.

const secretsUsage = `Commands for the store's sealed secrets (each takes --config FILE or --mcp-servers FILE):
  secrets status [--json]
        Show the key ring the secrets are sealed with: key ids, when each was made,
        how many messages it has sealed (of its limit), which is active, and how
        many secrets each seals now. No key material is shown.
  secrets rekey
        Add a new data key, make it active, and seal every secret again with it.
        Works while gateways run on the same store; they learn of the new key
        when they meet it. The master key stays the same.
The master key is [store] key / key_file / key_env: by default $MCPEDGE_STORE_KEY
(base64 of 32 bytes) if set, else store.key beside a SQLite database. A PostgreSQL
store needs the variable or key_file, the same on every replica.
`

// openStore opens the configured store with its secrets' master key
// (open.MasterKey decides where it comes from).
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	return open.Configured(ctx, cfg)
}

// cmdSecrets runs `mcpedge secrets …`; args start after "secrets".
func cmdSecrets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, secretsUsage)
		if len(args) == 0 {
			return usageError{errors.New("secrets: give a subcommand (see the usage above)")}
		}
		return flag.ErrHelp
	}
	sub := args[0]
	flags := flag.NewFlagSet("secrets "+sub, flag.ContinueOnError)
	flags.SetOutput(stderr)
	src := configFlags(flags)
	var asJSON bool
	switch sub {
	case "status":
		flags.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	case "rekey":
	default:
		fmt.Fprint(stderr, secretsUsage)
		return usageError{fmt.Errorf("unknown command \"secrets %s\" (see the usage above)", sub)}
	}
	if _, err := parseSubcommand(flags, "mcpedge secrets "+sub+" [--config FILE | --mcp-servers FILE]", args[1:]); err != nil {
		return err
	}
	s, err := src()
	if err != nil {
		return err
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	key, err := open.MasterKey(cfg)
	if err != nil {
		return err
	}
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := open.OpenWithKey(openCtx, cfg.Store.URL, cfg.Server.DataDir, key)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()
	sealed, ok := st.(store.SealedSecrets)
	if !ok {
		return fmt.Errorf("the %s store does not seal its secrets", st.Kind())
	}
	switch sub {
	case "rekey":
		id, n, err := sealed.RekeySecrets(ctx)
		if err != nil {
			if id != 0 {
				return fmt.Errorf("key %d is active, but sealing the secrets again stopped: %w (run secrets rekey again to finish)", id, err)
			}
			return err
		}
		fmt.Fprintf(stdout, "key %d is active (master key from %s); sealed %d secrets again\n", id, key, n)
		return nil
	}
	r, err := sealed.SecretRing(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, struct {
			MasterKey string `json:"master_key"`
			*store.SecretRing
		}{key.String(), r})
	}
	fmt.Fprintf(stdout, "master key: %s\n%d secrets, %d not sealed yet\n\n", key, r.Secrets, r.Plaintext)
	rows := make([][]string, 0, len(r.Keys))
	for _, k := range r.Keys {
		active := ""
		if k.Active {
			active = "yes"
		}
		rows = append(rows, []string{strconv.FormatUint(uint64(k.ID), 10), fmtTime(k.Created),
			strconv.FormatUint(k.Messages, 10), strconv.FormatUint(k.MaxMessages, 10), strconv.Itoa(k.Secrets), active})
	}
	return printTable(stdout, "KEY\tCREATED\tMESSAGES\tLIMIT\tSECRETS\tACTIVE", rows)
}
