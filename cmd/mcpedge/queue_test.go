package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestQueueCLI runs `mcpedge queue …` against a queue this test fills,
// kept open in this process the way a running gateway keeps it.
func TestQueueCLI(t *testing.T) {
	ctx := t.Context()
	t.Setenv(queueKeyEnv, "")
	xdg := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + xdg, queueKeyEnv + "="}
	dataDir := filepath.Join(xdg, "mcpedge")

	// No queue yet: ls says so and creates nothing.
	if out, errs, code := mcpedge(t, "", env, "queue", "ls"); code != 0 || out != "" || !strings.Contains(errs, "no offline queue") {
		t.Fatalf("ls without a queue: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := mcpedge(t, "", env, "queue", "ls", "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls --json without a queue: exit %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, queueDBFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ls created the queue: %v", err)
	}
	if _, errs, code := mcpedge(t, "", env, "queue", "retry", "qnope"); code != 1 || !strings.Contains(errs, "no entry qnope") {
		t.Errorf("retry without a queue: exit %d %s", code, errs)
	}

	q, err := openQueueDB(ctx, dataDir, true, &queue.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	enqueue := func(tenant, target, tool string) string {
		id, err := q.Enqueue(ctx, queue.Entry{Tenant: tenant, Target: target, Tool: tool, Arguments: json.RawMessage(`{"secret":"s3cr3t"}`)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	failed := enqueue("acme", "files", "write")
	done := enqueue("acme", "files", "read")
	pending := enqueue("globex", "search", "find")
	if e, err := q.Next(ctx, "files"); err != nil || e.ID != failed {
		t.Fatal(e, err)
	}
	if err := q.Fail(ctx, failed, errors.New("connection refused\nby files"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(ctx, done, json.RawMessage(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}

	out, errs, code := mcpedge(t, "", env, "queue", "ls")
	if code != 0 {
		t.Fatalf("ls: exit %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("ls printed\n%s", out)
	}
	for i, want := range [][]string{
		{failed, "acme", "files", "write", "failed", "1", "connection refused by files"},
		{done, "acme", "files", "read", "done"},
		{pending, "globex", "search", "find", "pending", "0"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("ls line %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
	if strings.Contains(out, "s3cr3t") {
		t.Error("ls shows the arguments")
	}

	out, _, code = mcpedge(t, "", env, "queue", "ls", "--json", "--state", "failed")
	var got []queue.Entry
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("ls --json: exit %d, %v\n%s", code, err, out)
	}
	if len(got) != 1 || got[0].ID != failed || got[0].State != queue.Failed || got[0].LastError == "" || got[0].Arguments != nil {
		t.Errorf("ls --json --state failed = %+v", got)
	}
	out, _, _ = mcpedge(t, "", env, "queue", "ls", "--json", "--tenant", "globex", "--target", "search")
	if json.Unmarshal([]byte(out), &got); len(got) != 1 || got[0].ID != pending {
		t.Errorf("ls --tenant globex --target search = %+v", got)
	}

	// retry: the failed entry is pending again.
	if out, errs, code := mcpedge(t, "", env, "queue", "retry", failed); code != 0 || !strings.Contains(out, "pending again") {
		t.Fatalf("retry: exit %d\n%s%s", code, out, errs)
	}
	if e, err := q.Get(ctx, "acme", failed); err != nil || e.State != queue.Pending || e.Attempts != 0 {
		t.Errorf("after retry: %+v, %v", e, err)
	}
	if _, errs, code := mcpedge(t, "", env, "queue", "retry", done); code != 1 || !strings.Contains(errs, "is done") {
		t.Errorf("retry of a done entry: exit %d %s", code, errs)
	}

	// purge
	if out, errs, code := mcpedge(t, "", env, "queue", "purge", done, "--yes"); code != 0 || !strings.Contains(out, "purged") {
		t.Fatalf("purge: exit %d\n%s%s", code, out, errs)
	}
	if _, err := q.Get(ctx, "acme", done); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Get after purge: %v", err)
	}
	if _, errs, code := mcpedge(t, "", env, "queue", "purge", done, "--yes"); code != 1 || !strings.Contains(errs, "no such entry") {
		t.Errorf("second purge: exit %d %s", code, errs)
	}

	// rekey, while this process keeps the queue open.
	if out, errs, code := mcpedge(t, "", env, "queue", "rekey"); code != 0 || !strings.Contains(out, "key 2 is active") || !strings.Contains(out, "re-encrypted 2 entries") {
		t.Fatalf("rekey: exit %d\n%s%s", code, out, errs)
	}
	for _, id := range []string{failed, pending} {
		tenant := "acme"
		if id == pending {
			tenant = "globex"
		}
		if e, err := q.Get(ctx, tenant, id); err != nil || string(e.Arguments) != `{"secret":"s3cr3t"}` {
			t.Errorf("Get after rekey: %+v, %v", e, err)
		}
	}
	if _, err := q.Enqueue(ctx, queue.Entry{Tenant: "acme", Target: "files", Tool: "x"}); err != nil {
		t.Errorf("Enqueue after rekey: %v", err)
	}

	// Another master key in the environment is refused.
	other := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if _, errs, code := mcpedge(t, "", []string{"XDG_DATA_HOME=" + xdg, queueKeyEnv + "=" + other}, "queue", "rekey"); code != 1 || !strings.Contains(errs, "environment variable MCPEDGE_QUEUE_KEY is not the one key 1 was made with") {
		t.Errorf("rekey with another key: exit %d %s", code, errs)
	}

	// Usage errors.
	for _, args := range [][]string{{"queue"}, {"queue", "frob"}, {"queue", "ls", "--state", "lost"}, {"queue", "retry"}, {"queue", "purge", "a", "b"}} {
		if _, errs, code := mcpedge(t, "", env, args...); code != 2 {
			t.Errorf("mcpedge %s: exit %d, want 2\n%s", strings.Join(args, " "), code, errs)
		}
	}

	// --config names another data directory.
	dir := t.TempDir()
	cfg := writeConfig(t, "[server]\ndata_dir = \""+filepath.ToSlash(dir)+"\"\n")
	q2, err := openQueueDB(ctx, dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := q2.Enqueue(context.Background(), queue.Entry{Tenant: "t", Target: "up", Tool: "x"})
	q2.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, errs, code := mcpedge(t, "", env, "queue", "ls", "--config", cfg); code != 0 || !strings.Contains(out, id) {
		t.Errorf("ls --config: exit %d\n%s%s", code, out, errs)
	}
}

// TestServeOpensQueue: serve opens <data_dir>/queue.db, offers
// mcpedge__queue_result, and it answers "not found" for an unknown id.
func TestServeOpensQueue(t *testing.T) {
	xdg := t.TempDir()
	p := startServe(t, []string{"XDG_DATA_HOME=" + xdg, queueKeyEnv + "="})
	cs := connect(t, p.URL+"/mcp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tl := range tools.Tools {
		found = found || tl.Name == "mcpedge__queue_result"
	}
	if !found {
		t.Fatalf("mcpedge__queue_result not listed")
	}
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "mcpedge__queue_result", Arguments: map[string]any{"id": "nosuch"}})
	if err == nil || !strings.Contains(err.Error(), `no queued call "nosuch"`) {
		t.Errorf("queue_result of an unknown id: %v", err)
	}
	for _, f := range []string{queueDBFile, queueKeyFile} {
		if _, err := os.Stat(filepath.Join(xdg, "mcpedge", f)); err != nil {
			t.Errorf("serve did not create %s: %v", f, err)
		}
	}
}
