package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Security tests on the real binary (SQLite store, keys made with
// the CLI), in the style of security_e2e_test.go.

// TestLatticeRESTFollowsPolicy: the lattice REST API is the REST
// face of the lattice tools, so a tenant whose virtual servers do not name
// the "lattice" upstream, or whose rules deny a lattice tool, may not do
// over REST what it may not do over MCP.
func TestLatticeRESTFollowsPolicy(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[auth]\nrevocation_poll = \"200ms\"\n")
	p := startServe(t, env, "--config", cfgPath)
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "lattice")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "member"))
	grid := `{"name":"grid","dims":[4,4],"boundary":"open"}`

	// Control: beta may use the lattice tools, over MCP and REST.
	code, b := apiDo(t, http.MethodPost, p.URL+"/api/lattices", keyB, grid)
	if code/100 != 2 {
		t.Fatalf("beta creates a lattice: %d %s", code, b)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(b, &created)

	// acme's virtual server names only "ev": no lattice tools over MCP...
	csA, err := connectAs(t, p.URL+"/mcp", keyA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, csA); names["lattice__lattice_create"] {
		t.Fatalf("acme sees the lattice tools: %v", names)
	}
	// ... and none over REST either.
	if code, b := apiDo(t, http.MethodPost, p.URL+"/api/lattices", keyA, grid); code != http.StatusForbidden {
		t.Errorf("acme, whose virtual servers exclude the lattice upstream, creating a lattice over REST: %d %s, want 403", code, b)
	}

	// A rule denying lattice_delete to members holds over REST.
	if code, b := apiDo(t, http.MethodPost, p.URL+"/api/tenants/beta/rules", testAdminKey, `{"tool":"lattice__lattice_delete","effect":"deny","roles":["member"]}`); code != http.StatusCreated {
		t.Fatalf("adding the rule: %d %s", code, b)
	}
	waitFor(t, 5*time.Second, "rule in force", func() bool {
		cs, err := connectAs(t, p.URL+"/mcp", keyB, nil)
		if err != nil {
			return false
		}
		defer cs.Close()
		return !toolNames(t, cs)["lattice__lattice_delete"]
	})
	if code, b := apiDo(t, http.MethodDelete, p.URL+"/api/lattices/"+created.ID, keyB, ""); code != http.StatusForbidden {
		t.Errorf("a member denied lattice_delete by a rule deleting a lattice over REST: %d %s, want 403", code, b)
	}
}

// TestSecurityControlsBinary: defences that hold on the real binary.
// A revoked key is refused on the session it opened; /readyz without
// credentials and with a tenant's key shows no upstream details, /metrics
// is for operators; an oversized Authorization header, NUL bytes and
// invalid UTF-8 are refused without harm.
func TestSecurityControlsBinary(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[auth]\nrevocation_poll = \"200ms\"\n")
	p := startServe(t, env, "--config", cfgPath)
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "lattice")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))

	cs, err := connectAs(t, p.URL+"/mcp", keyA, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.waitReadyAuth(t, testAdminKey, "lattice")
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "lattice__lattice_list", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("before revocation: %+v %v", res, err)
	}
	cli(t, env, "key", "revoke", keyA[:12], "--config", cfgPath, "--tenant", "acme", "--yes")
	waitFor(t, 5*time.Second, "revoked key refused on its open session", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "lattice__lattice_list", Arguments: map[string]any{}})
		return err != nil
	})

	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "owner"))
	for _, tok := range []string{"", keyB} {
		code, b := apiDo(t, http.MethodGet, p.URL+"/readyz", tok, "")
		var r struct{ Upstreams []any }
		if json.Unmarshal(b, &r) != nil || len(r.Upstreams) != 0 {
			t.Errorf("/readyz with %q shows upstream details: %d %s", tok[:min(len(tok), 12)], code, b)
		}
	}
	if code, _ := apiDo(t, http.MethodGet, p.URL+"/metrics", keyB, ""); code != http.StatusForbidden {
		t.Errorf("a tenant owner reads /metrics: %d", code)
	}
	if code, b := apiDo(t, http.MethodGet, p.URL+"/readyz", testAdminKey, ""); code != 200 || !strings.Contains(string(b), `"lattice"`) {
		t.Errorf("the operator's /readyz: %d %s", code, b)
	}

	// Hostile input: none of it may crash the gateway or authenticate.
	huge := "Bearer mcpe_" + strings.Repeat("A", 100_000)
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/mcp", strings.NewReader(`{}`))
	req.Header.Set("Authorization", huge)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 100 kB Authorization header: %d", resp.StatusCode)
		}
	}
	for _, body := range []string{
		`{"tenant":"acme\u0000","user":"owner","password":"x\u0000yyyyyyyy"}`,
		"{\"tenant\":\"acme\xff\",\"user\":\"o\",\"password\":\"zzzzzzzz\"}",
	} {
		if code, b := apiDo(t, http.MethodPost, p.URL+"/api/auth/login", "", body); code != http.StatusUnauthorized && code != http.StatusBadRequest {
			t.Errorf("login with %q: %d %s", body, code, b)
		}
	}
	// A NUL byte in the credential (Go's client refuses to send one).
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte("GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer mcpe_\x00" + strings.Repeat("a", 40) + "\r\nConnection: close\r\n\r\n"))
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if !strings.Contains(status, " 400 ") && !strings.Contains(status, " 401 ") {
		t.Errorf("NUL in a key: %q", status)
	}
	if code, _ := apiDo(t, http.MethodGet, p.URL+"/healthz", "", ""); code != 200 {
		t.Fatalf("the gateway is unwell after hostile input: %d", code)
	}
}

// TestLatticeRESTChangesAreAudited: the same change through the
// lattice tools is a tool.call entry; through /api/lattices nothing.
func TestLatticeRESTChangesAreAudited(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "")
	p := startServe(t, env, "--config", cfgPath)
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "lattice")
	key := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	code, b := apiDo(t, http.MethodPost, p.URL+"/api/lattices", key, `{"name":"grid","dims":[4,4],"boundary":"open"}`)
	var created struct{ ID string }
	if code/100 != 2 || json.Unmarshal(b, &created) != nil {
		t.Fatalf("create: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodDelete, p.URL+"/api/lattices/"+created.ID, key, ""); code/100 != 2 {
		t.Fatalf("delete: %d %s", code, b)
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	out := cli(t, env, "audit", "export", "--config", cfgPath)
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		var e struct {
			Action, Target, Outcome string
			Detail                  json.RawMessage
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Action == "tool.call" && e.Outcome == "ok" && strings.Contains(string(e.Detail), created.ID) {
			seen[e.Target] = true
		}
	}
	if !seen["lattice__lattice_create"] || !seen["lattice__lattice_delete"] {
		t.Fatalf("the lattice %s was created and deleted over REST; the audit log has %v of it:\n%s", created.ID, seen, out)
	}
}
