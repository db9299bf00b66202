package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/backup"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/deferq"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
)

// Backups (internal/backup, docs/platform.md): `mcpedge backup` and
// `mcpedge restore` read and write the configured store directly, like
// the other admin commands; `mcpedge serve` makes scheduled ones.

// givenBackupKey is the key given for backups, if any: --key-file, else
// $MCPEDGE_BACKUP_KEY (base64), else [backup] key_file. ok is false when
// none is given (backups then use the store's master key).
func givenBackupKey(ctx context.Context, cfg *config.Config, flagFile string) (k backup.Key, ok bool, err error) {
	var src sealbox.KeySource
	switch {
	case flagFile != "":
		src = keyFile(flagFile)
	case os.Getenv(config.DefaultBackupKeyEnv) != "":
		src = sealbox.EnvKey(config.DefaultBackupKeyEnv)
	case cfg.Backup.KeyFile != "":
		p := cfg.Backup.KeyFile
		if !filepath.IsAbs(p) {
			if cfg.Server.DataDir == "" {
				return k, false, fmt.Errorf("backup.key_file %q is relative to data_dir, which is not set", p)
			}
			p = filepath.Join(cfg.Server.DataDir, p)
		}
		src = keyFile(p)
	default:
		return k, false, nil
	}
	b, err := src.MasterKey(ctx)
	if err != nil {
		return k, false, err
	}
	return backup.Key{Bytes: b, Kind: backup.KeyBackup, Source: src.String()}, true, nil
}

// storeBackupKey is the store's master key, which must exist already.
func storeBackupKey(ctx context.Context, cfg *config.Config) (backup.Key, error) {
	src, err := open.MasterKey(cfg)
	if err != nil {
		return backup.Key{}, err
	}
	src = open.NoCreate(src)
	b, err := src.MasterKey(ctx)
	if err != nil {
		return backup.Key{}, fmt.Errorf("the store's master key: %w", err)
	}
	return backup.Key{Bytes: b, Kind: backup.KeyStore, Source: src.String()}, nil
}

// backupKey is the key a new backup is encrypted with.
func backupKey(ctx context.Context, cfg *config.Config, flagFile string) (backup.Key, error) {
	k, ok, err := givenBackupKey(ctx, cfg, flagFile)
	if err != nil || ok {
		return k, err
	}
	return storeBackupKey(ctx, cfg)
}

// keyFile is a key file that is read, never created.
type keyFile string

func (f keyFile) String() string { return "key file " + string(f) }

func (f keyFile) MasterKey(context.Context) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return nil, err
	}
	if len(b) != backup.KeySize {
		hint := ""
		if t := strings.TrimSpace(string(b)); len(t) == base64.StdEncoding.EncodedLen(backup.KeySize) {
			hint = " (it looks like base64 text: put the decoded bytes in the file, or the text in $" + config.DefaultBackupKeyEnv + ")"
		}
		return nil, fmt.Errorf("%s holds %d bytes, want exactly %d random bytes%s", f, len(b), backup.KeySize, hint)
	}
	return b, nil
}

// backupSource is what a backup of cfg copies: the store, and the offline
// queue of this machine's data directory unless noQueue.
func backupSource(cfg *config.Config, noQueue bool) backup.Source {
	src := backup.Source{StoreURL: cfg.Store.URL, DataDir: cfg.Server.DataDir, Version: version}
	if !noQueue && cfg.Server.DataDir != "" {
		src.QueuePath = filepath.Join(cfg.Server.DataDir, queueDBFile)
	}
	return src
}

func printManifest(w io.Writer, what string, m *backup.Manifest) {
	fmt.Fprintf(w, "%s: %s store, schema version %d, made %s by mcpedge %s\n", what, m.Engine, m.SchemaVersion, m.Created.Format(time.RFC3339), m.Mcpedge)
	for _, t := range m.Tables {
		fmt.Fprintf(w, "  %-20s %d rows\n", t.Name, t.Rows)
	}
	if m.Queue != nil {
		for _, t := range m.Queue.Tables {
			if t.Name == "entries" {
				fmt.Fprintf(w, "  offline queue: %d entries\n", t.Rows)
			}
		}
	} else {
		fmt.Fprintln(w, "  offline queue: none")
	}
}

func (a *app) backupCmd() *cobra.Command {
	var (
		cf, verifyCF    *configFlags
		out, keyPath    string
		verifyKey       string
		noQueue, asJSON bool
		verifyJSON      bool
	)
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check that a backup file decrypts and is whole (writes nothing)",
		Long: `Read a whole backup file with its key and check every part against its
checksum; print its manifest. The key is the one "mcpedge restore" would
use: the store's master key, or the backup key (--key-file,
$MCPEDGE_BACKUP_KEY, [backup] key_file) when the file was made with one.`,
		Args: posArgs("the backup FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			_, cfg, err := verifyCF.load()
			if err != nil {
				return err
			}
			f, key, err := openBackupFile(ctx, cfg, args[0], verifyKey)
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := backup.Verify(ctx, f, key)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if verifyJSON {
				return cmdline.PrintJSON(a.stdout, m)
			}
			printManifest(a.stdout, args[0]+" is whole", m)
			return nil
		},
	}
	verifyCF = addConfigFlags(verify)
	verify.Flags().StringVar(&verifyKey, "key-file", "", "the backup key `FILE` (32 bytes), when the backup was made with one")
	verify.Flags().BoolVar(&verifyJSON, "json", false, "print the manifest as JSON")

	c := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Write an encrypted, consistent backup of the store and the offline queue",
		Long: `Write a backup of the configured store (SQLite or PostgreSQL) and of this
machine's offline queue to FILE (mode 0600), while gateways keep serving:
the store is copied as of one moment (SQLite: VACUUM INTO; PostgreSQL: one
REPEATABLE READ transaction over every table of mcpedge's schema). It is
encrypted (AES-256-GCM) with the store's master key, or with a backup key
given by --key-file, $MCPEDGE_BACKUP_KEY (base64) or [backup] key_file.
FILE must not exist. "mcpedge restore FILE" restores it into an empty
store; see docs/platform.md.`,
		Args: posArgs(),
		PreRunE: func(*cobra.Command, []string) error {
			if out == "" {
				return cmdline.Usagef("backup: give the file to write with --out FILE")
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			_, cfg, err := cf.load()
			if err != nil {
				return err
			}
			key, err := backupKey(ctx, cfg, keyPath)
			if err != nil {
				return err
			}
			m, err := backup.WriteFile(ctx, out, key, backupSource(cfg, noQueue))
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if asJSON {
				return cmdline.PrintJSON(a.stdout, m)
			}
			printManifest(a.stdout, "wrote "+out, m)
			fmt.Fprintf(a.stdout, "encrypted with %s (%s)\n", key.Kind, key.Source)
			return nil
		},
	}
	cf = addConfigFlags(c)
	c.Flags().StringVar(&out, "out", "", "the backup `FILE` to write (must not exist)")
	c.Flags().StringVar(&keyPath, "key-file", "", "encrypt with the backup key in `FILE` (32 random bytes) instead of the store's master key")
	c.Flags().BoolVar(&noQueue, "no-queue", false, "leave the offline queue out")
	c.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	c.AddCommand(verify)
	return c
}

// openBackupFile opens a backup and picks its key from the kind its
// header names: the backup key given, or the store's master key.
func openBackupFile(ctx context.Context, cfg *config.Config, path, keyPath string) (*os.File, backup.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, backup.Key{}, err
	}
	kind, err := backup.KeyKind(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, backup.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	var key backup.Key
	if kind == backup.KeyBackup {
		var ok bool
		key, ok, err = givenBackupKey(ctx, cfg, keyPath)
		if err == nil && !ok {
			err = fmt.Errorf("%s was encrypted with a backup key: give it with --key-file FILE, $%s or [backup] key_file", path, config.DefaultBackupKeyEnv)
		}
	} else {
		key, err = storeBackupKey(ctx, cfg)
	}
	if err != nil {
		f.Close()
		return nil, backup.Key{}, err
	}
	return f, key, nil
}

func (a *app) restoreCmd() *cobra.Command {
	var (
		cf              *configFlags
		keyPath         string
		noQueue, asJSON bool
	)
	c := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore a backup into an empty store (and the offline queue)",
		Long: `Restore a backup made by "mcpedge backup" (or a scheduled one) into the
configured store, which must be empty: a SQLite file that does not exist
yet, or a PostgreSQL schema without tables. The offline queue goes to
<data_dir>/queue.db, which must not exist (--no-queue leaves it out); it
is opened with the queue's key (queue.key or $MCPEDGE_QUEUE_KEY, which
must be the source's) before anything is put in place.

Refused, with nothing written: a wrong key, a damaged or changed file, a
backup of a newer schema than this mcpedge knows, a store that is not
empty, a backup of another engine. The store is migrated to this
mcpedge's schema afterwards.`,
		Args: posArgs("the backup FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			_, cfg, err := cf.load()
			if err != nil {
				return err
			}
			f, key, err := openBackupFile(ctx, cfg, args[0], keyPath)
			if err != nil {
				return err
			}
			defer f.Close()
			master, err := open.MasterKey(cfg)
			if err != nil {
				return err
			}
			master = open.NoCreate(master)
			// The restored secrets open with the configured master key
			// only: find out that it is missing before reading.
			if _, err := master.MasterKey(ctx); err != nil {
				return fmt.Errorf("restore: the store's master key: %w", err)
			}
			t := backup.Target{StoreURL: cfg.Store.URL, DataDir: cfg.Server.DataDir,
				CheckStore: func(ctx context.Context, path string) error {
					st, err := open.OpenWithKey(ctx, "sqlite://"+path, "", master)
					if err != nil {
						return fmt.Errorf("opening the restored store: %w", err)
					}
					return st.Close()
				},
			}
			if !noQueue && cfg.Server.DataDir != "" {
				t.QueuePath = filepath.Join(cfg.Server.DataDir, queueDBFile)
				t.CheckQueue = func(ctx context.Context, path string) error {
					return checkRestoredQueue(ctx, cfg, path)
				}
			}
			m, err := backup.Restore(ctx, f, key, t)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			// Migrate to this binary's schema and check that the
			// configured master key opens the restored secrets.
			st, err := open.OpenWithKey(ctx, cfg.Store.URL, cfg.Server.DataDir, master)
			if err != nil {
				return fmt.Errorf("the backup is restored, but opening the store failed: %w", err)
			}
			v, err := st.SchemaVersion(ctx)
			st.Close()
			if err != nil {
				return err
			}
			if asJSON {
				return cmdline.PrintJSON(a.stdout, m)
			}
			printManifest(a.stdout, "restored "+args[0], m)
			if v != m.SchemaVersion {
				fmt.Fprintf(a.stdout, "migrated the store from schema version %d to %d\n", m.SchemaVersion, v)
			}
			if m.Queue != nil && t.QueuePath == "" {
				fmt.Fprintln(a.stdout, "the offline queue was left out")
			}
			return nil
		},
	}
	cf = addConfigFlags(c)
	c.Flags().StringVar(&keyPath, "key-file", "", "the backup key `FILE` (32 bytes), when the backup was made with one")
	c.Flags().BoolVar(&noQueue, "no-queue", false, "do not restore the offline queue")
	c.Flags().BoolVar(&asJSON, "json", false, "print the manifest as JSON")
	return c
}

// checkRestoredQueue opens a restored queue file with the queue's key of
// cfg's data directory; a key file that does not exist there is an
// error, not a new key (the queue's entries are sealed with the source's).
func checkRestoredQueue(ctx context.Context, cfg *config.Config, path string) error {
	if os.Getenv(queueKeyEnv) == "" {
		kp := filepath.Join(cfg.Server.DataDir, queueKeyFile)
		if _, err := os.Stat(kp); err != nil {
			return fmt.Errorf("its entries are sealed with the queue's own key, and %s does not exist: copy the source's queue.key there (or set $%s), or restore with --no-queue", kp, queueKeyEnv)
		}
	}
	box, err := sealbox.New(ctx, queueKeySource(cfg.Server.DataDir), nil)
	if err != nil {
		return err
	}
	opts := deferq.Options(cfg.Queue)
	q, err := queue.Open(ctx, path, box, &opts)
	if err != nil {
		return err
	}
	return q.Close()
}

// startBackups runs the scheduled backups of [backup] until ctx is done
// and registers their metrics (also when they are off, so that the
// interval gauge says so).
func startBackups(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger, reg prometheus.Registerer) (stop func()) {
	sched, ok := st.(store.Schedules)
	if !ok {
		return func() {}
	}
	interval := cfg.Backup.Interval.D()
	if interval > 0 && open.SQLiteFile(cfg.Store.URL, cfg.Server.DataDir) == "" && !strings.HasPrefix(cfg.Store.URL, "postgres") {
		log.Warn("scheduled backups are off: the store is in memory")
		interval = 0
	}
	dir := cfg.Backup.Dir
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cfg.Server.DataDir, dir)
	}
	s := backup.NewScheduler(backup.SchedulerOptions{
		Store: sched, Interval: interval, Dir: dir, Keep: cfg.Backup.Keep,
		Key:    func(ctx context.Context) (backup.Key, error) { return backupKey(ctx, cfg, "") },
		Source: backupSource(cfg, !cfg.Queue.Enabled),
		Logger: log, Registerer: reg,
	})
	if interval <= 0 {
		return func() {}
	}
	log.Info("scheduled backups", "interval", interval.String(), "dir", dir, "keep", cfg.Backup.Keep)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(runCtx)
	}()
	return func() {
		cancel()
		<-done
	}
}
