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

const queueUsage = `Offline queue commands (each takes --config FILE or --mcp-servers FILE to find [server] data_dir):
  queue ls [--json] [--state pending|delivering|done|failed] [--tenant T] [--target UPSTREAM] [--limit N]
        List queued calls, oldest first (no arguments or results: they are encrypted).
  queue retry ID
        Send a failed (or waiting) call again now, with its attempts reset.
  queue purge ID
        Delete a call and its result, in any state.
  queue rekey
        Add a new encryption key and re-encrypt every stored call and result with it
        (needed when the active key has sealed its limit of messages).
The queue file is <data_dir>/queue.db; ls, retry and purge need no key. The key is
$MCPEDGE_QUEUE_KEY (base64 of 32 bytes) if set, else <data_dir>/queue.key.
`

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

// cmdQueue runs `mcpedge queue …`; args start after "queue".
func cmdQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, queueUsage)
		if len(args) == 0 {
			return usageError{errors.New("queue: give a subcommand (see the usage above)")}
		}
		return flag.ErrHelp
	}
	sub := args[0]
	flags := flag.NewFlagSet("queue "+sub, flag.ContinueOnError)
	flags.SetOutput(stderr)
	src := configFlags(flags)
	var (
		asJSON                bool
		state, tenant, target string
		limit                 int
	)
	var want []string // positional arguments
	switch sub {
	case "ls":
		flags.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
		flags.StringVar(&state, "state", "", "only calls in this `state`: pending, delivering, done or failed")
		flags.StringVar(&tenant, "tenant", "", "only this `tenant`'s calls")
		flags.StringVar(&target, "target", "", "only calls to this `upstream`")
		flags.IntVar(&limit, "limit", 1000, "list at most `N` calls")
	case "retry", "purge":
		want = []string{"the entry ID"}
	case "rekey":
	default:
		fmt.Fprint(stderr, queueUsage)
		return usageError{fmt.Errorf("unknown command \"queue %s\" (see the usage above)", sub)}
	}
	pos, err := parseSubcommand(flags, "mcpedge queue "+sub+" [--config FILE | --mcp-servers FILE]", args[1:], want...)
	if err != nil {
		return err
	}
	if state != "" && !queue.State(state).Valid() {
		return usageError{fmt.Errorf("queue ls: --state %q is not pending, delivering, done or failed", state)}
	}
	s, err := src()
	if err != nil {
		return err
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	dataDir := cfg.Server.DataDir
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	if sub != "rekey" {
		// Reading commands do not create a queue where there is none.
		path := filepath.Join(dataDir, queueDBFile)
		if _, err := os.Stat(path); dataDir == "" || errors.Is(err, fs.ErrNotExist) {
			if sub == "ls" {
				if asJSON {
					fmt.Fprintln(stdout, "[]")
				} else {
					fmt.Fprintf(stderr, "no offline queue (%s does not exist)\n", path)
				}
				return nil
			}
			return fmt.Errorf("queue %s: no entry %s (there is no queue: %s does not exist)", sub, pos[0], path)
		}
	}
	// The configured bounds and retention, so that the CLI's own pruning
	// keeps what the gateway keeps.
	qopts := deferq.Options(cfg.Queue)
	q, err := openQueueDB(ctx, dataDir, sub == "rekey", &qopts)
	if err != nil {
		return err
	}
	defer q.Close()

	switch sub {
	case "ls":
		return queueList(ctx, q, queue.Filter{State: queue.State(state), Tenant: tenant, Target: target}, limit, asJSON, stdout)
	case "retry":
		if err := q.Retry(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "entry %s is pending again (a running gateway sends it within seconds)\n", pos[0])
	case "purge":
		if err := q.Purge(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "purged entry %s\n", pos[0])
	case "rekey":
		return queueRekey(ctx, q, dataDir, stdout)
	}
	return nil
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
		return printJSON(stdout, entries)
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		rows = append(rows, []string{e.ID, e.Tenant, e.Target, e.Tool, string(e.State), strconv.Itoa(e.Attempts),
			fmtTime(e.CreatedAt), fmtTime(e.NextAttempt), oneLine(e.LastError, 80)})
	}
	return printTable(stdout, "ID\tTENANT\tTARGET\tTOOL\tSTATE\tATTEMPTS\tCREATED\tNEXT ATTEMPT\tLAST ERROR", rows)
}

// oneLine shortens s to one line of at most n characters for a table.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func queueRekey(ctx context.Context, q *queue.Queue, dataDir string, stdout io.Writer) error {
	box := q.Box()
	id, err := box.Rotate(ctx)
	if err != nil {
		return err
	}
	n, err := q.Reencrypt(ctx)
	if err != nil {
		return fmt.Errorf("key %d is active, but re-encrypting stopped: %w (run queue rekey again to finish)", id, err)
	}
	fmt.Fprintf(stdout, "key %d is active (master key from %s); re-encrypted %d entries\n", id, queueKeySource(dataDir), n)
	return nil
}
