package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// apiCall sends a REST request to a gateway with token and returns the
// status and the decoded body.
func apiCall(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// TestChangesAcrossReplicas: two gateway processes on one PostgreSQL store
// and one Redis, with a store poll of an hour. A rule added through one
// replica's API is in force on the other at once (Redis); and a session
// belongs to its tenant's credential on both: another tenant's key gets
// 404 for its id on each.
func TestChangesAcrossReplicas(t *testing.T) {
	pg := storetest.PostgresURL(t)
	rd := requireService(t, "MCPEDGE_TEST_REDIS")
	docs := newReplicaUpstream(t)
	var key [32]byte
	_, _ = rand.Read(key[:])
	env := []string{"MCPEDGE_ADMIN_KEY=" + e2eAdminKey, "MCPEDGE_STORE_KEY=" + base64.StdEncoding.EncodeToString(key[:])}
	var procs []*gatewayProc
	var cfgPath string
	for i := range 2 {
		cfg := fmt.Sprintf("[server]\nshutdown_grace = \"2s\"\n[store]\nurl = %s\n[redis]\nurl = %s\n[auth]\nrevocation_poll = \"1h\"\n", q(pg), q(rd)) +
			upstreamBlock("docs", "http", "url = "+q(docs.URL), fmt.Sprintf("headers = { \"X-Replica\" = \"r%d\" }", i))
		cfgPath = writeFile(t, "mcpedge.toml", cfg)
		p := startProc(t, cfgPath, freeAddr(t), append(env, "XDG_DATA_HOME="+t.TempDir())...)
		p.waitReady(t, e2eAdminKey, "docs")
		procs = append(procs, p)
	}
	a, b := procs[0].URL, procs[1].URL

	if st, m := apiCall(t, http.MethodPost, a+"/api/tenants", e2eAdminKey, `{"name":"t2"}`); st != http.StatusCreated {
		t.Fatalf("create tenant: HTTP %d %v", st, m)
	}
	st, m := apiCall(t, http.MethodPost, a+"/api/tenants/t2/keys", e2eAdminKey, `{"name":"k","role":"member"}`)
	secret, _ := m["secret"].(string)
	if st != http.StatusCreated || secret == "" {
		t.Fatalf("create key: HTTP %d %v", st, m)
	}

	// t2's session on replica b sees the tool.
	t2 := connectSessionWith(t, b+"/mcp", secret, nil)
	ctx := ctxT(t, 2*time.Minute)
	lists := func() bool {
		res, err := t2.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		for _, tl := range res.Tools {
			if tl.Name == "docs__whoami" {
				return true
			}
		}
		return false
	}
	if !lists() {
		t.Fatal("t2 does not see docs__whoami before any rule")
	}

	// Another tenant's session id is not found on either replica.
	admin := connectSessionWith(t, a+"/mcp", e2eAdminKey, nil)
	if _, err := admin.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{a, b} {
		req, _ := http.NewRequest(http.MethodPost, url+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
		req.Header.Set("Mcp-Session-Id", admin.ID())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("t2's key with the admin tenant's session id on %s: HTTP %d, want 404", url, resp.StatusCode)
		}
	}

	// A rule made through replica a is in force on b within moments,
	// not at b's next poll (an hour).
	if st, m := apiCall(t, http.MethodPost, a+"/api/tenants/t2/rules", e2eAdminKey, `{"tool":"docs__whoami","effect":"deny"}`); st != http.StatusCreated {
		t.Fatalf("create rule: HTTP %d %v", st, m)
	}
	deadline := time.Now().Add(8 * time.Second)
	for lists() {
		if time.Now().After(deadline) {
			t.Fatal("the rule made on one replica is not in force on the other after 8s")
		}
		time.Sleep(500 * time.Millisecond) // within the tenant's rate limit
	}
	res, err := t2.CallTool(ctx, &mcp.CallToolParams{Name: "docs__whoami"})
	if err == nil && !res.IsError {
		t.Errorf("the denied tool was served on the other replica: %+v", res)
	}

	// The CLI writes the store directly, and with [redis] in its
	// configuration announces what it changed: a plan changed with it is
	// in force on the running replica at once, not at its next policy
	// poll (an hour). The control: the same change made by the CLI
	// without Redis is not in force there yet.
	cli := func(cfg string, args ...string) string {
		t.Helper()
		cmd := exec.Command(mcpedgeBinary(t), append(args, "--config", cfg)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mcpedge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	lastLine := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	noRedis := writeFile(t, "mcpedge-noredis.toml", fmt.Sprintf("[store]\nurl = %s\n", q(pg))+upstreamBlock("docs", "http", "url = "+q(docs.URL)))
	// limited reports whether replica b refuses one of four requests made
	// at once with secret (HTTP 429).
	limited := func(secret string) bool {
		for range 4 {
			req, _ := http.NewRequest(http.MethodPost, b+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`))
			req.Header.Set("Authorization", "Bearer "+secret)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				return true
			}
		}
		return false
	}
	keys := map[string]string{}
	for name, cfg := range map[string]string{"quiet": noRedis, "loud": cfgPath} {
		cli(cfg, "plan", "set", name+"-plan", "--key-per-minute", "6000", "--key-burst", "1000")
		cli(cfg, "tenant", "create", name, "--plan", name+"-plan")
		keys[name] = lastLine(cli(cfg, "key", "create", "--tenant", name))
		if limited(keys[name]) {
			t.Fatalf("%s is limited before its plan changed", name)
		}
	}
	cli(noRedis, "plan", "set", "quiet-plan", "--key-per-minute", "1", "--key-burst", "1")
	if limited(keys["quiet"]) {
		t.Fatal("control: a plan changed by the CLI without Redis is in force at once; the check below proves nothing")
	}
	// A session on replica b is told its lists may have changed when the
	// policy changes (here by the CLI's announced change).
	listChanged := make(chan struct{}, 8)
	watcher := connectSessionWith(t, b+"/mcp", secret, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { listChanged <- struct{}{} },
	})
	if _, err := watcher.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cli(cfgPath, "plan", "set", "loud-plan", "--key-per-minute", "1", "--key-burst", "1")
	select {
	case <-listChanged:
	case <-time.After(8 * time.Second):
		t.Error("no tools/list_changed on replica b within 8s of a policy change made with the CLI")
	}
	deadline = time.Now().Add(8 * time.Second)
	for !limited(keys["loud"]) {
		if time.Now().After(deadline) {
			t.Fatal("a plan changed by the CLI (with Redis) is not in force on the running replica after 8s")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
