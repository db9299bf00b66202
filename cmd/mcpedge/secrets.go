package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// The store's secrets (the API-key HMAC key, the JWT signing key) are
// sealed with a master key that is not in the database; see
// docs/security.md. storeKeySource decides where it comes from, and
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

// storeTPMFile is the TPM-sealed master key of [store] key = "tpm", in
// data_dir: a key of its own, apart from the device's and the queue's.
const storeTPMFile = "store.tpm"

// storeKeySource chooses the master key of the store's secrets from the
// configuration ([store] key, key_file, key_env) and the environment.
func storeKeySource(cfg *config.Config) (sealbox.KeySource, error) {
	sc := cfg.Store
	envName := sc.KeyEnv
	if envName == "" {
		envName = config.DefaultStoreKeyEnv
	}
	postgres := strings.HasPrefix(sc.URL, "postgres://") || strings.HasPrefix(sc.URL, "postgresql://")
	file := func() (sealbox.KeySource, error) {
		path := sc.KeyFile
		if path == "" {
			return open.DefaultKey(sc.URL, cfg.Server.DataDir)
		}
		if !filepath.IsAbs(path) {
			if cfg.Server.DataDir == "" {
				return nil, fmt.Errorf("store.key_file %q is relative to data_dir, which is not set; give an absolute path", path)
			}
			path = filepath.Join(cfg.Server.DataDir, path)
		}
		if postgres {
			return existingKeyFile(path), nil
		}
		return open.FileKey(path), nil
	}
	switch sc.Key {
	case config.StoreKeyEnv:
		if os.Getenv(envName) == "" {
			return nil, fmt.Errorf("[store] key = %q, but %s is not set (base64 of 32 random bytes; make one with: head -c 32 /dev/urandom | base64)", sc.Key, envName)
		}
		return sealbox.EnvKey(envName), nil
	case config.StoreKeyFile:
		return file()
	case config.StoreKeyTPM:
		if postgres {
			return nil, errors.New(`[store] key = "tpm" seals the key to this machine's TPM, but replicas sharing a PostgreSQL store need the same key: use key_env or key_file`)
		}
		if cfg.Server.DataDir == "" {
			return nil, errors.New(`[store] key = "tpm" keeps the sealed key in data_dir, which is not set`)
		}
		return devicekey.TPMSealedKeyFile(cfg.Device.TPM, filepath.Join(cfg.Server.DataDir, storeTPMFile)), nil
	}
	if os.Getenv(envName) != "" {
		return sealbox.EnvKey(envName), nil
	}
	return file()
}

// existingKeyFile is a key file that must exist: the key of a PostgreSQL
// store is shared by every replica, so each machine making its own would
// lock the others out.
type existingKeyFile string

func (f existingKeyFile) String() string { return "key file " + string(f) }

func (f existingKeyFile) MasterKey(ctx context.Context) ([]byte, error) {
	if _, err := os.Stat(string(f)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store.key_file %s does not exist; a PostgreSQL store's key is shared by every replica, so make it once (head -c 32 /dev/urandom > %s; chmod 600 %s) and copy it to each", string(f), string(f), string(f))
	}
	return sealbox.FileKey(string(f)).MasterKey(ctx)
}

// openStore opens the configured store with its secrets' master key.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	key, err := storeKeySource(cfg)
	if err != nil {
		return nil, err
	}
	return open.OpenWithKey(ctx, cfg.Store.URL, cfg.Server.DataDir, key)
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
	key, err := storeKeySource(cfg)
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
