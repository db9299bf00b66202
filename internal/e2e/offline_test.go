package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestOfflineCatalog: two upstreams, the real everything server over
// stdio, go down for good (the child is killed and cannot start again).
// The one with a deferrable tool keeps its catalog listed, so its client
// still sees the tool and its call is queued; the other's tools are
// withdrawn. When the first comes back, the queued call is delivered.
func TestOfflineCatalog(t *testing.T) {
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeclient.Check(root); err != nil {
		t.Fatal(err)
	}
	node, args := nodeclient.EverythingStdioCommand(root)
	dir := t.TempDir()
	// The child starts only while its flag file exists: removing it and
	// killing the child takes the upstream down until the file is back.
	block := func(name string, extra ...string) (string, string) {
		flag := filepath.Join(dir, name+".up")
		if err := os.WriteFile(flag, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		sh := append([]string{"-c", `test -e "$UP_FLAG" || { echo "down: no $UP_FLAG" >&2; exit 3; }; exec "$0" "$@"`, node}, args...)
		return flag, upstreamBlock(name, "stdio", "command = \"/bin/sh\"\nargs = "+qlist(sh)+"\nenv = { UP_FLAG = "+q(flag)+" }", extra...)
	}
	keptFlag, kept := block("kept", `deferrable = ["echo"]`, "retries = 0")
	droppedFlag, dropped := block("dropped")

	catalogs := filepath.Join(dir, "catalogs")
	withQueue, _, stopQueue := offlineQueue(t, dir, queue.Options{
		MaxAttempts: 1000, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second, PollInterval: 200 * time.Millisecond,
	})
	gw := startGatewayWith(t, "[server]\n"+kept+dropped, func(g *gateway.Gateway) {
		g.SetCatalogDir(catalogs)
		withQueue(g)
	})
	t.Cleanup(stopQueue)
	cs := goClient(t, gw.URL+"/mcp", nil, "2025-11-25")
	listed := func() []string {
		res, err := cs.ListTools(ctxT(t, 10*time.Second), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range res.Tools {
			names = append(names, tl.Name)
		}
		return names
	}
	if l := listed(); !slices.Contains(l, "kept__echo") || !slices.Contains(l, "dropped__echo") {
		t.Fatalf("tools before: %v", l)
	}

	// Both go down for good.
	for name, flag := range map[string]string{"kept": keptFlag, "dropped": droppedFlag} {
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		pid := status(gw, name).PID
		if pid == 0 {
			t.Fatalf("%s has no child process", name)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both upstreams down", 20*time.Second, func() bool {
		return status(gw, "kept").State != "ready" && status(gw, "dropped").State != "ready"
	})
	waitFor(t, "the dropped upstream's tools withdrawn", 10*time.Second, func() bool {
		return !slices.Contains(listed(), "dropped__echo")
	})
	if l := listed(); !slices.Contains(l, "kept__echo") {
		t.Fatalf("the kept upstream's tools were withdrawn: %v", l)
	}
	kst := func() gateway.UpstreamStatus {
		for _, s := range gw.Statuses() {
			if s.Name == "kept" {
				return s
			}
		}
		return gateway.UpstreamStatus{}
	}
	if s := kst(); !s.CatalogKept {
		t.Errorf("status of the kept upstream: %+v, want catalog_kept", s)
	}

	// The listed tool's call is queued; another tool of the kept catalog
	// fails fast with "unavailable".
	res, err := cs.CallTool(ctxT(t, 20*time.Second), &mcp.CallToolParams{Name: "kept__echo", Arguments: map[string]any{"message": "while away"}})
	if err != nil || res.IsError {
		t.Fatalf("deferrable call while down: %v %+v", err, res)
	}
	id, _ := res.StructuredContent.(map[string]any)["id"].(string)
	if id == "" {
		t.Fatalf("not queued: %+v", res.StructuredContent)
	}
	t0 := time.Now()
	_, err = cs.CallTool(ctxT(t, 20*time.Second), &mcp.CallToolParams{Name: "kept__get-sum", Arguments: map[string]any{"a": 1, "b": 2}})
	if code(err) != mcpwire.CodeUpstreamUnavailable || time.Since(t0) > 5*time.Second {
		t.Fatalf("non-deferrable call while down: %v after %s, want -32010 at once", err, time.Since(t0))
	}

	// Back: the catalog is live again and the queued call delivered.
	if err := os.WriteFile(keptFlag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kept upstream back", 60*time.Second, func() bool { return status(gw, "kept").State == "ready" })
	waitFor(t, "the queued call delivered", 30*time.Second, func() bool {
		res, err := cs.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "mcpedge__queue_result", Arguments: map[string]any{"id": id}})
		if err != nil || res.IsError {
			return false
		}
		b, _ := json.Marshal(res.StructuredContent)
		var e struct{ State string }
		_ = json.Unmarshal(b, &e)
		return e.State == "done"
	})
	if s := kst(); s.CatalogKept {
		t.Errorf("catalog still marked kept after the upstream came back: %+v", s)
	}

	// The kept upstream's catalog was saved (the other's was not): a
	// gateway started while the upstream cannot start lists it at once.
	waitFor(t, "the saved catalog", 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(catalogs, "kept.json"))
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(catalogs, "dropped.json")); !os.IsNotExist(err) {
		t.Errorf("the dropped upstream's catalog was saved: %v", err)
	}
	if err := os.Remove(keptFlag); err != nil {
		t.Fatal(err)
	}
	gw2 := startGatewayWith(t, "[server]\n"+kept, func(g *gateway.Gateway) { g.SetCatalogDir(catalogs) })
	cs2 := goClient(t, gw2.URL+"/mcp", nil, "2025-11-25")
	res2, err := cs2.ListTools(ctxT(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res2.Tools, func(tl *mcp.Tool) bool { return tl.Name == "kept__echo" }) {
		t.Fatalf("restarted gateway without its upstream lists %d tools, not kept__echo", len(res2.Tools))
	}
	for _, s := range gw2.Statuses() {
		if s.Name == "kept" && (s.State == "ready" || !s.CatalogKept) {
			t.Errorf("restarted gateway's status: %+v", s)
		}
	}
	_, err = cs2.CallTool(ctxT(t, 20*time.Second), &mcp.CallToolParams{Name: "kept__get-sum", Arguments: map[string]any{"a": 1, "b": 2}})
	if code(err) != mcpwire.CodeUpstreamUnavailable {
		t.Errorf("call of a saved catalog's tool while the upstream is down: %v, want -32010", err)
	}
}
