package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/deferq"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
)

// The offline queue lives in <data_dir>/queue.db. Its master key is the
// base64 value of $MCPEDGE_QUEUE_KEY when that is set, else the file
// <data_dir>/queue.key (created with 32 random bytes on first use).
const (
	queueDBFile  = "queue.db"
	queueKeyFile = "queue.key"
	queueKeyEnv  = "MCPEDGE_QUEUE_KEY"
)

// queueKeySource is where the queue's master key comes from for a data
// directory.
func queueKeySource(dataDir string) sealbox.KeySource {
	if os.Getenv(queueKeyEnv) != "" {
		return sealbox.EnvKey(queueKeyEnv)
	}
	return sealbox.FileKey(filepath.Join(dataDir, queueKeyFile))
}

// openQueueDB opens <dataDir>/queue.db, creating the directory (mode
// 0700) and the database when they do not exist. With a key it also
// opens the key (creating the key file on first use), which Enqueue,
// Next, Deliver, Get and Reencrypt need; without one it lists, retries
// and purges only.
func openQueueDB(ctx context.Context, dataDir string, withKey bool, opts *queue.Options) (*queue.Queue, error) {
	if dataDir == "" {
		return nil, errors.New("the offline queue needs a data directory: set [server] data_dir (no home directory to default to)")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	var box *sealbox.Box
	if withKey {
		var err error
		if box, err = sealbox.New(ctx, queueKeySource(dataDir), nil); err != nil {
			return nil, err
		}
	}
	return queue.Open(ctx, filepath.Join(dataDir, queueDBFile), box, opts)
}

func (a *app) queueCmd() *cobra.Command {
	// open loads the configuration and opens the queue for a command;
	// reading commands do not create a queue where there is none (nil).
	type opened struct {
		q       *queue.Queue
		dataDir string
		path    string
	}
	open := func(ctx context.Context, cf *configFlags, withKey, create bool) (*opened, error) {
		_, cfg, err := cf.load()
		if err != nil {
			return nil, err
		}
		o := &opened{dataDir: cfg.Server.DataDir, path: filepath.Join(cfg.Server.DataDir, queueDBFile)}
		if !create {
			if _, err := os.Stat(o.path); o.dataDir == "" || errors.Is(err, fs.ErrNotExist) {
				return o, nil
			}
		}
		// The configured bounds and retention, so that the CLI's own
		// pruning keeps what the gateway keeps.
		qopts := deferq.Options(cfg.Queue)
		if o.q, err = openQueueDB(ctx, o.dataDir, withKey, &qopts); err != nil {
			return nil, err
		}
		return o, nil
	}
	var (
		lsCF, retryCF, purgeCF, rekeyCF *configFlags
		asJSON, rekeyJSON, yes          bool
		state, tenant, target           string
		limit                           int
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List queued calls, oldest first (no arguments or results: they are encrypted)",
		Args:  posArgs(),
		PreRunE: func(*cobra.Command, []string) error {
			if state != "" && !queue.State(state).Valid() {
				return cmdline.Usagef("queue ls: --state %q is not pending, delivering, done or failed", state)
			}
			if limit < 1 || limit > queue.MaxListLimit {
				return cmdline.Usagef("queue ls: --limit must be 1 to %d, got %d", queue.MaxListLimit, limit)
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			o, err := open(ctx, lsCF, false, false)
			if err != nil {
				return err
			}
			if o.q == nil {
				if asJSON {
					fmt.Fprintln(a.stdout, "[]")
				} else {
					fmt.Fprintf(a.stderr, "no offline queue (%s does not exist)\n", o.path)
				}
				return nil
			}
			defer o.q.Close()
			return queueList(ctx, o.q, queue.Filter{State: queue.State(state), Tenant: tenant, Target: target}, limit, asJSON, a.stdout)
		},
	}
	lsCF = addConfigFlags(ls)
	jsonFlag(ls, &asJSON)
	ls.Flags().StringVar(&state, "state", "", "only calls in this `STATE`: pending, delivering, done or failed")
	ls.Flags().StringVar(&tenant, "tenant", "", "only this `TENANT`'s calls")
	ls.Flags().StringVar(&target, "target", "", "only calls to this `UPSTREAM`")
	ls.Flags().IntVar(&limit, "limit", 1000, fmt.Sprintf("list at most `N` calls (1 to %d)", queue.MaxListLimit))
	_ = ls.RegisterFlagCompletionFunc("state", cobra.FixedCompletions([]string{"pending", "delivering", "done", "failed"}, cobra.ShellCompDirectiveNoFileComp))

	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Send a failed (or waiting) call again now, with its attempts reset",
		Args:  posArgs("the entry ID"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			o, err := open(ctx, retryCF, false, false)
			if err != nil {
				return err
			}
			if o.q == nil {
				return fmt.Errorf("queue retry: no entry %s (there is no queue: %s does not exist)", args[0], o.path)
			}
			defer o.q.Close()
			if err := o.q.Retry(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "entry %s is pending again (a running gateway sends it within seconds)\n", args[0])
			return nil
		},
	}
	retryCF = addConfigFlags(retry)

	purge := &cobra.Command{
		Use:   "purge ID",
		Short: "Delete a call and its result, in any state (asks first)",
		Args:  posArgs("the entry ID"),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			o, err := open(ctx, purgeCF, false, false)
			if err != nil {
				return err
			}
			if o.q == nil {
				return fmt.Errorf("queue purge: no entry %s (there is no queue: %s does not exist)", args[0], o.path)
			}
			defer o.q.Close()
			e, err := o.q.Info(ctx, args[0])
			if err != nil {
				return err
			}
			if err := a.confirm(c, fmt.Sprintf("purge entry %s (%s of %s, %s, tenant %s)? The call and its result are lost", e.ID, e.Tool, e.Target, e.State, e.Tenant), yes); err != nil {
				return err
			}
			if err := o.q.Purge(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "purged entry %s\n", args[0])
			return nil
		},
	}
	purgeCF = addConfigFlags(purge)
	yesFlag(purge, &yes)

	rekey := &cobra.Command{
		Use:   "rekey",
		Short: "Add a new encryption key and re-encrypt every stored call and result with it",
		Long: `Add a new encryption key and re-encrypt every stored call and result with it
(needed when the active key has sealed its limit of messages). The key is
$MCPEDGE_QUEUE_KEY (base64 of 32 bytes) if set, else <data_dir>/queue.key.`,
		Args: posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := interruptible(c.Context())
			defer stop()
			o, err := open(ctx, rekeyCF, true, true)
			if err != nil {
				return err
			}
			defer o.q.Close()
			return queueRekey(ctx, o.q, o.dataDir, rekeyJSON, a.stdout)
		},
	}
	rekeyCF = addConfigFlags(rekey)
	jsonFlag(rekey, &rekeyJSON)

	g := group("queue", "Inspect and manage the durable offline queue (<data_dir>/queue.db)", ls, retry, purge, rekey)
	g.Long = `Inspect and manage the durable offline queue in <data_dir>/queue.db, where serve
keeps calls of deferrable tools while their upstream is unreachable (see
docs/edge.md). ls, retry and purge need no key.`
	return g
}

func queueList(ctx context.Context, q *queue.Queue, f queue.Filter, limit int, asJSON bool, stdout io.Writer) error {
	entries := []queue.Entry{}
	for len(entries) < limit {
		f.Limit = min(1000, limit-len(entries))
		page, err := q.List(ctx, f)
		if err != nil {
			return err
		}
		entries = append(entries, page...)
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].ID
	}
	if asJSON {
		return cmdline.PrintJSON(stdout, entries)
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, []string{e.ID, e.Tenant, e.Target, e.Tool, string(e.State), strconv.Itoa(e.Attempts),
			cmdline.Time(e.CreatedAt), cmdline.Time(e.NextAttempt), cmdline.OneLine(e.LastError, 80)})
	}
	return cmdline.PrintTable(stdout, "ID\tTENANT\tTARGET\tTOOL\tSTATE\tATTEMPTS\tCREATED\tNEXT ATTEMPT\tLAST ERROR", rows)
}

func queueRekey(ctx context.Context, q *queue.Queue, dataDir string, asJSON bool, stdout io.Writer) error {
	box := q.Box()
	id, err := box.Rotate(ctx)
	if err != nil {
		return err
	}
	n, err := q.Reencrypt(ctx)
	if err != nil {
		return fmt.Errorf("key %d is active, but re-encrypting stopped: %w (run queue rekey again to finish)", id, err)
	}
	if asJSON {
		return cmdline.PrintJSON(stdout, map[string]any{"active_key": id, "master_key": queueKeySource(dataDir).String(), "reencrypted": n})
	}
	fmt.Fprintf(stdout, "key %d is active (master key from %s); re-encrypted %d entries\n", id, queueKeySource(dataDir), n)
	return nil
}
