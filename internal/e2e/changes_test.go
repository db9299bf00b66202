package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	for i := range 2 {
		cfg := fmt.Sprintf("[server]\nshutdown_grace = \"2s\"\n[store]\nurl = %s\n[redis]\nurl = %s\n[auth]\nrevocation_poll = \"1h\"\n", q(pg), q(rd)) +
			upstreamBlock("docs", "http", "url = "+q(docs.URL), fmt.Sprintf("headers = { \"X-Replica\" = \"r%d\" }", i))
		p := startProc(t, writeFile(t, "mcpedge.toml", cfg), freeAddr(t), append(env, "XDG_DATA_HOME="+t.TempDir())...)
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
}
