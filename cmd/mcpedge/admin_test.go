package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/audit"
	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open" // also the database/sql driver "sqlite"
)

// adminStore is a configuration whose store is a SQLite file in a fresh
// directory.
func adminStore(t *testing.T) (cfg, db string) {
	dir := t.TempDir()
	db = filepath.Join(dir, "state.db")
	cfg = writeConfig(t, "[store]\nurl = \"sqlite://"+filepath.ToSlash(db)+"\"\n[server]\ndata_dir = \""+filepath.ToSlash(dir)+"\"\n")
	return cfg, db
}

// mcpedge runs the binary and returns stdout, stderr and the exit code.
func mcpedge(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := mcpedge(t, "", nil, args...)
	if code != 0 {
		t.Fatalf("mcpedge %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestAdminCLI: tenant create → key create (the key alone on the last
// line) → key ls → key revoke → audit verify, on a SQLite file.
func TestAdminCLI(t *testing.T) {
	cfg, db := adminStore(t)
	c := []string{"--config", cfg}

	out := mustRun(t, append([]string{"migrate"}, c...)...)
	if !strings.Contains(out, "sqlite store is at schema version") {
		t.Errorf("migrate: %q", out)
	}
	out = mustRun(t, append([]string{"tenant", "create", "acme", "--plan", "pro", "--upstreams", "github,everything"}, c...)...)
	if !strings.Contains(out, "created tenant acme") {
		t.Errorf("tenant create: %q", out)
	}
	out = mustRun(t, append([]string{"tenant", "ls", "--json"}, c...)...)
	var tenants []store.Tenant
	if err := json.Unmarshal([]byte(out), &tenants); err != nil || len(tenants) != 2 {
		t.Fatalf("tenant ls --json: %v %s", err, out)
	}

	out = mustRun(t, append([]string{"key", "create", "--tenant", "acme", "--name", "ci", "--role", "admin", "--scopes", "mcp:call,admin:read", "--expires", "720h"}, c...)...)
	key := lastLine(out)
	if !strings.HasPrefix(key, "mcpe_") || strings.ContainsAny(key, " \t") {
		t.Fatalf("key create: the last line is not the key alone: %q", out)
	}
	out = mustRun(t, append([]string{"key", "ls", "--tenant", "acme"}, c...)...)
	if !strings.Contains(out, key[:12]) || strings.Contains(out, key) || !strings.Contains(out, "active") {
		t.Errorf("key ls: %q", out)
	}
	out = mustRun(t, append([]string{"key", "ls", "--tenant", "acme", "--json"}, c...)...)
	var keys []store.APIKey
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 || keys[0].Role != "admin" || strings.Contains(out, key) {
		t.Fatalf("key ls --json: %v %s", err, out)
	}

	out = mustRun(t, append([]string{"key", "rotate", key[:12]}, c...)...)
	next := lastLine(out)
	if !strings.HasPrefix(next, "mcpe_") || next == key {
		t.Errorf("key rotate: %q", out)
	}
	mustRun(t, append([]string{"key", "revoke", keys[0].ID, "--tenant", "acme", "--yes"}, c...)...)
	mustRun(t, append([]string{"key", "revoke", next[:12], "--yes"}, c...)...)
	out = mustRun(t, append([]string{"key", "ls", "--tenant", "acme"}, c...)...)
	if strings.Count(out, "revoked") != 2 {
		t.Errorf("key ls after revoke: %q", out)
	}

	// Users: the password from stdin or the environment, never a flag.
	if o, e, code := mcpedge(t, "a long enough password\n", nil, append([]string{"user", "create", "--tenant", "acme", "alice", "--role", "admin"}, c...)...); code != 0 {
		t.Fatalf("user create from stdin: %d %s%s", code, o, e)
	}
	if o, e, code := mcpedge(t, "", []string{"MCPEDGE_PASSWORD=another long password"}, append([]string{"user", "create", "--tenant", "acme", "bob"}, c...)...); code != 0 {
		t.Fatalf("user create from the environment: %d %s%s", code, o, e)
	}
	out = mustRun(t, append([]string{"user", "ls", "--tenant", "acme"}, c...)...)
	if !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Errorf("user ls: %q", out)
	}
	mustRun(t, append([]string{"user", "rm", "--tenant", "acme", "bob", "--yes"}, c...)...)
	mustRun(t, append([]string{"plan", "set", "startup", "--key-per-minute", "100", "--lattice-timeout", "2s"}, c...)...)
	out = mustRun(t, append([]string{"plan", "ls"}, c...)...)
	if !strings.Contains(out, "startup") || !strings.Contains(out, "100/-") {
		t.Errorf("plan ls: %q", out)
	}

	out = mustRun(t, append([]string{"audit", "verify"}, c...)...)
	if !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify: %q", out)
	}
	exp := filepath.Join(t.TempDir(), "audit.jsonl")
	mustRun(t, append([]string{"audit", "export", "--tenant", "acme", "--out", exp}, c...)...)
	f, err := os.Open(exp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("export mode %v", st.Mode())
	}
	actions := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e store.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if strings.Contains(sc.Text(), key) || strings.Contains(sc.Text(), "long enough password") {
			t.Errorf("a secret in the audit log: %s", sc.Text())
		}
		actions[e.Action] = e.Actor
	}
	for _, a := range []string{"tenant.create", "key.create", "key.rotate", "key.revoke", "user.create", "user.delete"} {
		if actions[a] != "cli" {
			t.Errorf("exported audit: %s by %q, want cli (%v)", a, actions[a], actions)
		}
	}

	mustRun(t, append([]string{"tenant", "rm", "acme", "--yes"}, c...)...)

	// A tampered entry breaks the chain: exit 1 with the first problem.
	sdb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`UPDATE audit SET outcome = 'denied' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	o, e, code := mcpedge(t, "", nil, append([]string{"audit", "verify"}, c...)...)
	if code != 1 || !strings.Contains(e, "seq 3") {
		t.Errorf("verify of a tampered chain: exit %d\n%s%s", code, o, e)
	}
}

// TestAdminCLIErrors: usage errors exit 2, failures 1, with a message.
func TestAdminCLIErrors(t *testing.T) {
	cfg, _ := adminStore(t)
	c := []string{"--config", cfg}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"tenant"}, 2, "give a subcommand"},
		{[]string{"tenant", "bogus"}, 2, "unknown command"},
		{[]string{"tenant", "create"}, 2, "missing the tenant NAME"},
		{[]string{"tenant", "create", "a", "b"}, 2, "unexpected argument"},
		{[]string{"tenant", "create", "a", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"key", "create"}, 2, "--tenant is required"},
		{[]string{"plan", "set", "x"}, 2, "give at least one limit"},
		{[]string{"audit", "export", "--since", "yesterday"}, 2, "RFC 3339"},
		{[]string{"tenant", "create", "Bad Name"}, 1, "tenant name"},
		{[]string{"tenant", "rm", "nobody"}, 1, "not found"},
		{[]string{"key", "create", "--tenant", "nobody"}, 1, "not found"},
		{[]string{"key", "revoke", "nokey"}, 1, "not found"},
		{[]string{"key", "create", "--tenant", "default", "--expires", "soon"}, 1, "expiry"},
	} {
		o, e, code := mcpedge(t, "", nil, append(tc.args, c...)...)
		if code != tc.code || !strings.Contains(e, tc.msg) {
			t.Errorf("mcpedge %s: exit %d, want %d with %q\n%s%s", strings.Join(tc.args, " "), code, tc.code, tc.msg, o, e)
		}
	}
	// The store is not found where a config names a missing directory.
	bad := writeConfig(t, "[store]\nurl = \"sqlite:///nonexistent/dir/x.db\"\n")
	if _, e, code := mcpedge(t, "", nil, "tenant", "ls", "--config", bad); code != 1 || !strings.Contains(e, "opening the store") {
		t.Errorf("missing store directory: exit %d %s", code, e)
	}
}

// TestAdminCLIBesideGateway: the commands work on a store a gateway has
// open. The "gateway" here is this process: the same SQLite file, an
// auth service following revocations and an audit logger appending. A key
// the CLI revokes stops working in it within the revocation poll, and the
// audit chain both processes append to stays whole.
func TestAdminCLIBesideGateway(t *testing.T) {
	cfg, db := adminStore(t)
	c := []string{"--config", cfg}
	mustRun(t, append([]string{"tenant", "create", "acme"}, c...)...)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The store's secrets are sealed: open it with its master key (the
	// default, store.key beside the file), as the gateway does.
	st, err := open.Open(ctx, "sqlite://"+db, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lg := audit.NewLogger(st, nil, audit.LoggerOptions{})
	defer lg.Close(context.Background())
	as, err := auth.New(ctx, auth.Options{Store: st, Config: config.Auth{RevocationPoll: config.Duration(50 * time.Millisecond)}, Audit: lg.Record})
	if err != nil {
		t.Fatal(err)
	}
	as.Start(ctx)
	defer as.Close()

	// The gateway appends audit entries while the CLI does.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil && i < 200; i++ {
			lg.Record(ctx, &store.AuditEntry{Time: time.Now(), Actor: "gw", ActorKind: "system", Action: "tool.call", Outcome: "ok"})
			time.Sleep(2 * time.Millisecond)
		}
	}()
	key := lastLine(mustRun(t, append([]string{"key", "create", "--tenant", "acme"}, c...)...))
	if _, err := as.Authenticate(ctx, key, "127.0.0.1"); err != nil {
		t.Fatalf("the gateway does not accept a key the CLI created: %v", err)
	}
	mustRun(t, append([]string{"key", "revoke", key[:12], "-y"}, c...)...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := as.Authenticate(ctx, key, "127.0.0.1"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway still accepts a key the CLI revoked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-done
	if err := lg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, append([]string{"audit", "verify"}, c...)...)
	if !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify: %q", out)
	}
}
