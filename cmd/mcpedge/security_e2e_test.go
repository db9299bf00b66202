package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"
)

// The tests in this file run the real binary with authentication on: the
// store is a real SQLite file (or a real PostgreSQL), Redis is real, and
// credentials are made with the real CLI, as an operator would.

const testAdminKey = "mcpe_e2eadminkey0123456789abcdefghijklmnopqrstu"

// secEnv is the environment of a gateway under test: its own data
// directory and a known bootstrap key.
func secEnv(t *testing.T) []string {
	return []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
}

// cli runs an mcpedge subcommand against the config and returns its
// output; it fails the test on a non-zero exit.
func cli(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := cliErr(env, args...)
	if err != nil {
		t.Fatalf("mcpedge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cliErr(env []string, args ...string) (string, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// bearer adds a token to every request of an MCP client.
type bearer struct {
	token string
	extra map[string]string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	for k, v := range b.extra {
		r.Header.Set(k, v)
	}
	return b.base.RoundTrip(r)
}

func connectAs(t *testing.T, url, token string, extra map[string]string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "sec-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := &http.Client{Transport: bearer{token: token, extra: extra, base: http.DefaultTransport}}
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: hc, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err == nil {
		t.Cleanup(func() { _ = cs.Close() })
	}
	return cs, err
}

func toolNames(t *testing.T, cs *mcp.ClientSession) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names[tool.Name] = true
	}
	return names
}

// rawInit POSTs an initialize request and returns the status, headers and
// decoded body.
func rawInit(t *testing.T, url, token string, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`
	return rawPost(t, url, token, body, hdr)
}

func rawPost(t *testing.T, url, token, body string, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		// An SSE-framed answer: take the data line.
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "data: ") {
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m)
			}
		}
	}
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, resp.Header, m
}

func apiDo(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitFor polls cond until it holds or d passes, and reports how long it
// took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s", what, d)
	return 0
}

// TestAuthRequiredEndToEnd is the single-replica story on SQLite: bootstrap,
// the 401 challenge and its metadata, tenants and keys made with the CLI,
// each tenant seeing only its virtual server, cross-tenant attempts looking
// like nothing, revocation, and an audit log that verifies and catches
// tampering.
func TestAuthRequiredEndToEnd(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n"+everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	base := p.URL

	// Unauthenticated: 401 with the RFC 9728 pointer, which resolves.
	st, h, body := rawInit(t, base+"/mcp", "", nil)
	wa := h.Get("WWW-Authenticate")
	if st != http.StatusUnauthorized || !strings.Contains(wa, `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Fatalf("no credential: %d %q %v", st, wa, body)
	}
	code, prm := apiDo(t, http.MethodGet, base+"/.well-known/oauth-protected-resource/mcp", "", "")
	var md map[string]any
	if code != 200 || json.Unmarshal(prm, &md) != nil || md["resource"] != base+"/mcp" {
		t.Fatalf("protected resource metadata: %d %s", code, prm)
	}
	st, h, _ = rawInit(t, base+"/mcp", "mcpe_notakey000000000000000000000000000000000", nil)
	if st != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("unknown key: %d %q", st, h.Get("WWW-Authenticate"))
	}
	if st, _, _ := rawInit(t, base+"/mcp?access_token="+testAdminKey, "", nil); st != http.StatusBadRequest {
		t.Fatalf("token in the query: %d", st)
	}

	// Two tenants through the CLI, while the gateway runs on the same store.
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "lattice")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "member"))
	if !strings.HasPrefix(keyA, "mcpe_") || !strings.HasPrefix(keyB, "mcpe_") || keyA == keyB {
		t.Fatalf("keys: %q %q", keyA, keyB)
	}
	p.waitReadyAuth(t, testAdminKey, "ev")

	csA, err := connectAs(t, base+"/mcp", keyA, nil)
	if err != nil {
		t.Fatal(err)
	}
	namesA := toolNames(t, csA)
	if !namesA["ev__echo"] || namesA["mcpedge__status"] || namesA["lattice__lattice_path"] {
		t.Errorf("acme sees %v", namesA)
	}
	res, err := csA.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("acme calls its tool: %v %v", res, err)
	}

	// beta asks for acme's tool, also claiming to be acme in headers.
	csB, err := connectAs(t, base+"/mcp", keyB, map[string]string{"X-Tenant": "acme", "X-Mcpedge-Tenant": "acme", "X-Forwarded-User": "acme"})
	if err != nil {
		t.Fatal(err)
	}
	namesB := toolNames(t, csB)
	if namesB["ev__echo"] || !namesB["lattice__lattice_path"] {
		t.Errorf("beta sees %v", namesB)
	}
	_, errB := csB.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}})
	_, errNone := csB.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__nonesuch", Arguments: map[string]any{}})
	if errB == nil || errNone == nil || strings.ReplaceAll(errB.Error(), "ev__echo", "X") != strings.ReplaceAll(errNone.Error(), "ev__nonesuch", "X") {
		t.Errorf("a forbidden tool must look like a missing one: %v / %v", errB, errNone)
	}
	if st, _, _ := rawInit(t, base+"/mcp/ev", keyB, nil); st != http.StatusNotFound {
		t.Errorf("beta on /mcp/ev: %d, want 404", st)
	}
	if st, _, _ := rawInit(t, base+"/mcp/ev", keyA, nil); st != http.StatusOK {
		t.Errorf("acme on /mcp/ev: %d", st)
	}

	// The admin API: the operator sees both tenants; tenants see only
	// themselves, and another tenant's ids answer 404.
	code, b := apiDo(t, http.MethodGet, base+"/api/tenants", testAdminKey, "")
	if code != 200 || !strings.Contains(string(b), `"acme"`) || !strings.Contains(string(b), `"beta"`) {
		t.Errorf("operator lists tenants: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodGet, base+"/api/tenants/acme/keys", keyB, ""); code != http.StatusNotFound {
		t.Errorf("beta reads acme's keys: %d %s", code, b)
	}
	adminB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "admin"))
	if code, b := apiDo(t, http.MethodPost, base+"/api/tenants/beta/virtual-servers", adminB, `{"name":"more","upstreams":["*"]}`); code != http.StatusForbidden {
		t.Errorf("a tenant admin widened its own virtual servers: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodGet, base+"/api/openapi.json", "", ""); code != 200 || !strings.Contains(string(b), `"openapi"`) {
		t.Errorf("the API description without a credential: %d", code)
	}
	if code, _ := apiDo(t, http.MethodGet, base+"/metrics", keyA, ""); code != http.StatusForbidden {
		t.Errorf("a tenant reads /metrics: %d", code)
	}
	if code, _ := apiDo(t, http.MethodGet, base+"/metrics", testAdminKey, ""); code != 200 {
		t.Errorf("the operator reads /metrics: %d", code)
	}

	// Revocation with the CLI reaches the running gateway within the
	// poll bound.
	prefix := keyA[:12]
	cli(t, env, "key", "revoke", prefix, "--config", cfgPath, "--tenant", "acme", "--yes")
	took := waitFor(t, 5*time.Second, "revoked key refused", func() bool {
		st, _, _ := rawInit(t, base+"/mcp", keyA, nil)
		return st == http.StatusUnauthorized
	})
	t.Logf("CLI revocation took effect after %s (revocation_poll 500ms)", took)

	// The audit log has the calls and the refusal, and verifies.
	out := cli(t, env, "audit", "export", "--config", cfgPath)
	var sawCall, sawDenied, sawAccept, sawReject bool
	for _, line := range strings.Split(out, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["action"] == "tool.call" && e["target"] == "ev__echo" && e["outcome"] == "ok" {
			sawCall = true
			raw, _ := json.Marshal(e["detail"]) // a JSON object, not base64
			if !strings.Contains(string(raw), "args_sha256") || strings.Contains(string(raw), `"message"`) {
				t.Errorf("tool arguments must be recorded as a hash by default: %s", raw)
			}
		}
		if e["action"] == "tool.call" && e["outcome"] == "denied" {
			sawDenied = true
		}
		if e["action"] == "auth.accept" {
			sawAccept = true
		}
		if e["action"] == "auth.reject" {
			sawReject = true
		}
		for _, secret := range []string{keyA, keyB, testAdminKey} {
			if strings.Contains(line, secret) {
				t.Errorf("a key secret is in the audit log: %s", line)
			}
		}
	}
	if !sawAccept || !sawReject {
		t.Errorf("audit export lacks accepted (%v) or refused (%v) authentications", sawAccept, sawReject)
	}
	if !sawCall || !sawDenied {
		t.Errorf("audit export lacks the call (%v) or the refusal (%v):\n%s", sawCall, sawDenied, out)
	}
	if out := cli(t, env, "audit", "verify", "--config", cfgPath); !strings.Contains(strings.ToLower(out), "ok") {
		t.Errorf("audit verify: %s", out)
	}

	// Tamper with one entry in the database file: verify must fail.
	dataDir := strings.TrimPrefix(env[0], "XDG_DATA_HOME=")
	dbPath := filepath.Join(dataDir, "mcpedge", "mcpedge.db")
	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tbl := auditTable(t, db)
	if _, err := db.Exec(fmt.Sprintf(`UPDATE %s SET outcome = 'ok' WHERE outcome = 'denied'`, tbl)); err != nil {
		t.Fatalf("tampering: %v", err)
	}
	out, err = cliErr(env, "audit", "verify", "--config", cfgPath)
	if err == nil {
		t.Errorf("audit verify accepted an edited entry: %s", out)
	}
}

// TestScopeChallengeEndToEnd: the real binary and store, keys made with the
// CLI. A viewer key and a member key limited to mcp:list get HTTP 403 with
// the scope challenge the MCP authorization spec asks for on tools/call, in
// a raw session (the hot path's way in) and from the Go SDK client, whose
// session goes on; a member key calls; the refusals are in the audit log
// as denied.
func TestScopeChallengeEndToEnd(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	base := p.URL
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev")
	key := func(args ...string) string {
		return lastLine(cli(t, env, append([]string{"key", "create", "--config", cfgPath, "--tenant", "acme"}, args...)...))
	}
	viewer := key("--role", "viewer")
	listOnly := key("--role", "member", "--scopes", "mcp:list")
	member := key("--role", "member")
	p.waitReadyAuth(t, testAdminKey, "ev")

	challenge := func(why string) string {
		return `Bearer realm="mcpedge", resource_metadata="` + base + `/.well-known/oauth-protected-resource/mcp", error="insufficient_scope", scope="mcp:call", error_description="` + why + `"`
	}
	for _, tc := range []struct{ name, key, why string }{
		{"viewer", viewer, "calling tools needs the member role or higher (this credential's role: viewer)"},
		{"member mcp:list", listOnly, "calling tools needs the mcp:call scope (this credential's scopes: mcp:list)"},
	} {
		st, h, _ := rawInit(t, base+"/mcp", tc.key, nil)
		sid := h.Get("Mcp-Session-Id")
		if st != http.StatusOK || sid == "" {
			t.Fatalf("%s: initialize: %d %q", tc.name, st, sid)
		}
		session := map[string]string{"Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
		rawPost(t, base+"/mcp", tc.key, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session)
		st, h, body := rawPost(t, base+"/mcp", tc.key, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ev__echo","arguments":{"message":"hi"}}}`, session)
		e, _ := body["error"].(map[string]any)
		if st != http.StatusForbidden || h.Get("WWW-Authenticate") != challenge(tc.why) || body["id"] != float64(2) || e == nil {
			t.Errorf("%s: tools/call: HTTP %d\n WWW-Authenticate %q\nwant %q\nbody %v", tc.name, st, h.Get("WWW-Authenticate"), challenge(tc.why), body)
		}
		// Listing still works, and shows what the key may see.
		st, _, body = rawPost(t, base+"/mcp", tc.key, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, session)
		if st != http.StatusOK || body["result"] == nil {
			t.Errorf("%s: tools/list after the refusal: %d %v", tc.name, st, body)
		}

		cs, err := connectAs(t, base+"/mcp", tc.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}}); err == nil || !strings.Contains(err.Error(), "insufficient scope") {
			t.Errorf("%s: the SDK client's tools/call: %v", tc.name, err)
		}
		if !toolNames(t, cs)["ev__echo"] {
			t.Errorf("%s: the SDK client's session did not go on", tc.name)
		}
	}
	cs, err := connectAs(t, base+"/mcp", member, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}}); err != nil || res.IsError {
		t.Fatalf("a member's tools/call: %v %v", res, err)
	}

	denied := 0
	for _, line := range strings.Split(cli(t, env, "audit", "export", "--config", cfgPath), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["action"] == "tool.call" && e["target"] == "ev__echo" && e["outcome"] == "denied" {
			denied++
		}
	}
	if denied != 4 {
		t.Errorf("%d denied ev__echo calls in the audit log, want 4", denied)
	}
}

// auditTable finds the audit table's name in a SQLite database.
func auditTable(t *testing.T, db *sql.DB) string {
	t.Helper()
	var name string
	err := db.QueryRow(`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%audit%' ORDER BY length(name) LIMIT 1`).Scan(&name)
	if err != nil {
		t.Fatalf("finding the audit table: %v", err)
	}
	return name
}

// waitReadyAuth is waitReady with the operator's key (upstream details of
// /readyz are for operators).
func (p *gatewayProc) waitReadyAuth(t *testing.T, key string, names ...string) {
	t.Helper()
	waitFor(t, 30*time.Second, "upstreams ready", func() bool {
		code, b := apiDo(t, http.MethodGet, p.URL+"/readyz", key, "")
		if code != 200 {
			return false
		}
		var m struct {
			Upstreams []struct{ Name, State string }
		}
		_ = json.Unmarshal(b, &m)
		ready := 0
		for _, u := range m.Upstreams {
			for _, n := range names {
				if u.Name == n && u.State == "ready" {
					ready++
				}
			}
		}
		return ready == len(names)
	})
}

// TestSpoofedForwardedFor: X-Forwarded-For from a peer that is not a
// trusted proxy changes nothing (the IP limit holds); from a trusted one it
// names the client.
func TestSpoofedForwardedFor(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			env := secEnv(t)
			conf := "[plans.enterprise]\nip_per_minute = 1\nip_burst = 3\n"
			if trusted {
				conf += "[limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
			}
			p := startServe(t, env, "--config", writeConfig(t, conf))
			refused := 0
			for i := range 6 {
				st, h, body := rawInit(t, p.URL+"/mcp", testAdminKey, map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i+1)})
				if st == http.StatusTooManyRequests {
					refused++
					if h.Get("Retry-After") == "" || h.Get("RateLimit-Limit") == "" {
						t.Errorf("429 without Retry-After / RateLimit headers: %v", h)
					}
					e, _ := body["error"].(map[string]any)
					if e == nil || e["code"] != float64(-32029) {
						t.Errorf("429 body: %v", body)
					}
				}
			}
			if !trusted && refused != 3 {
				t.Errorf("untrusted peer: %d of 6 refused, want 3 (spoofed X-Forwarded-For must not reset the IP limit)", refused)
			}
			if trusted && refused != 0 {
				t.Errorf("trusted proxy: %d refused, want 0 (each forwarded client has its own limit)", refused)
			}
		})
	}
}

// TestLoginSessions signs a user in with a password, uses the access token
// on /mcp, rotates the refresh token, detects its reuse, and logs out.
func TestLoginSessions(t *testing.T) {
	env := append(secEnv(t), "MCPEDGE_ADMIN_PASSWORD=correct horse battery staple")
	p := startServe(t, env, "--config", writeConfig(t, "[auth]\nlockout_threshold = 3\n"))
	login := func(pw string) (int, map[string]any) {
		b, _ := json.Marshal(map[string]string{"tenant": "default", "user": "owner", "password": pw})
		code, out := apiDo(t, http.MethodPost, p.URL+"/api/auth/login", "", string(b))
		var m map[string]any
		_ = json.Unmarshal(out, &m)
		return code, m
	}
	code, tok := login("correct horse battery staple")
	if code != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil {
		t.Fatalf("login: %d %v", code, tok)
	}
	access := tok["access_token"].(string)
	if st, _, _ := rawInit(t, p.URL+"/mcp", access, nil); st != 200 {
		t.Fatalf("access token on /mcp: %d", st)
	}
	refresh := tok["refresh_token"].(string)
	code, out := apiDo(t, http.MethodPost, p.URL+"/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`)
	if code != 200 {
		t.Fatalf("refresh: %d %s", code, out)
	}
	var next map[string]any
	_ = json.Unmarshal(out, &next)
	if code, _ := apiDo(t, http.MethodPost, p.URL+"/api/auth/refresh", "", `{"refresh_token":"`+refresh+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("reused refresh token: %d", code)
	}
	// Reuse revoked the whole session: the rotated token is dead too.
	if code, _ := apiDo(t, http.MethodPost, p.URL+"/api/auth/refresh", "", `{"refresh_token":"`+next["refresh_token"].(string)+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("refresh after reuse detection: %d", code)
	}

	// Brute force: wrong passwords lock the account; then even the right
	// one is refused, with the same answer.
	for range 4 {
		if code, _ := login("wrong password!!"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", code)
		}
	}
	if code, _ := login("correct horse battery staple"); code != http.StatusUnauthorized {
		t.Fatalf("locked account accepted the right password: %d", code)
	}
}

// TestFirstStartPrintsKey: with nothing in the environment, the first start
// creates the operator key and prints it once; it works, and a second start
// on the same store prints none.
func TestFirstStartPrintsKey(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data, "MCPEDGE_ADMIN_KEY=", "MCPEDGE_ADMIN_PASSWORD="}
	p := startServe(t, env)
	var key string
	waitFor(t, 5*time.Second, "key printed", func() bool {
		for _, line := range strings.Split(p.stdout(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "mcpe_") {
				key = strings.TrimSpace(line)
				return true
			}
		}
		return false
	})
	if st, _, _ := rawInit(t, p.URL+"/mcp", key, nil); st != http.StatusOK {
		t.Fatalf("the printed key: %d", st)
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p2 := startServe(t, env)
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(p2.stdout(), "mcpe_") {
		t.Errorf("second start printed a key again:\n%s", p2.stdout())
	}
	if st, _, _ := rawInit(t, p2.URL+"/mcp", key, nil); st != http.StatusOK {
		t.Fatalf("the key after a restart: %d", st)
	}
}

// redisURL returns the test Redis, skipping (or failing, when services are
// required) without one.
func redisURL(t *testing.T) string {
	u := os.Getenv("MCPEDGE_TEST_REDIS")
	if u == "" {
		if os.Getenv("MCPEDGE_REQUIRE_SERVICES") == "1" {
			t.Fatal("MCPEDGE_TEST_REDIS is not set and MCPEDGE_REQUIRE_SERVICES=1: run scripts/test.sh")
		}
		t.Skip("MCPEDGE_TEST_REDIS is not set; run scripts/test.sh for the Redis tests")
	}
	return u
}

// TestReplicasShareLimitsAndRevocation runs two gateway processes on one
// PostgreSQL store and one Redis, as replicas behind a load balancer: the
// rate limit and the monthly quota hold across them, and a key revoked on
// one is refused by the other at once (through Redis: the store poll is set
// to 30s here, so only Redis can be that fast).
func TestReplicasShareLimitsAndRevocation(t *testing.T) {
	pg := storetest.PostgresURL(t)
	rd := redisURL(t)
	conf := fmt.Sprintf(`[store]
url = %q
[redis]
url = %q
[auth]
revocation_poll = "30s"
[plans.tiny]
key_per_minute = 1
key_burst = 4
tenant_per_minute = 6000
tenant_burst = 1000
ip_per_minute = 0
monthly_quota = 0
[plans.metered]
key_per_minute = 6000
key_burst = 1000
tenant_per_minute = 6000
tenant_burst = 1000
ip_per_minute = 0
monthly_quota = 3
`, pg, rd)
	cfgPath := writeConfig(t, conf)
	// Replicas on PostgreSQL share the master key of the store's secrets.
	env := []string{"MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_ADMIN_PASSWORD=correct horse battery staple",
		"MCPEDGE_STORE_KEY=c3RvcmUta2V5LW9mLXRoZS1yZXBsaWNhLXRlc3QhISE="}
	p1 := startServe(t, env, "--config", cfgPath)
	p2 := startServe(t, env, "--config", cfgPath)
	p1.waitReadyAuth(t, testAdminKey, "lattice")
	p2.waitReadyAuth(t, testAdminKey, "lattice")

	cli(t, env, "tenant", "create", "tiny", "--config", cfgPath, "--plan", "tiny", "--upstreams", "lattice")
	cli(t, env, "tenant", "create", "metered", "--config", cfgPath, "--plan", "metered", "--upstreams", "lattice")
	kTiny := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "tiny", "--role", "member"))

	// The key's burst of 4 is shared by both replicas.
	ok, limited := 0, 0
	for i := range 8 {
		url := p1.URL
		if i%2 == 1 {
			url = p2.URL
		}
		st, h, body := rawInit(t, url+"/mcp", kTiny, nil)
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if h.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			if e, _ := body["error"].(map[string]any); e == nil || !strings.Contains(fmt.Sprint(e["message"]), "retry in") {
				t.Errorf("429 body does not say when to retry: %v", body)
			}
		default:
			t.Fatalf("request %d: status %d %v", i, st, body)
		}
	}
	if ok != 4 || limited != 4 {
		t.Errorf("across two replicas: %d allowed, %d limited; want 4 and 4", ok, limited)
	}

	// The monthly quota (3 tool calls) is counted across replicas.
	code, b := apiDo(t, http.MethodPost, p1.URL+"/api/tenants/metered/keys", testAdminKey, `{"name":"q","role":"member"}`)
	if code != http.StatusCreated {
		t.Fatalf("creating a key through the API: %d %s", code, b)
	}
	var created struct {
		Key    struct{ ID string }
		Secret string
	}
	if err := json.Unmarshal(b, &created); err != nil || created.Secret == "" {
		t.Fatalf("key create answer: %s", b)
	}
	cs1, err := connectAs(t, p1.URL+"/mcp", created.Secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs2, err := connectAs(t, p2.URL+"/mcp", created.Secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	var quotaErr error
	calls := 0
	for i := range 5 {
		cs := cs1
		if i%2 == 1 {
			cs = cs2
		}
		_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "lattice__lattice_list", Arguments: map[string]any{}})
		if err != nil {
			quotaErr = err
			break
		}
		calls++
	}
	if calls != 3 || quotaErr == nil || !strings.Contains(quotaErr.Error(), "Too Many Requests") {
		t.Errorf("quota across replicas: %d calls before %v; want 3 then a quota error", calls, quotaErr)
	}

	// Revoke on replica 1 through the API; replica 2 refuses at once.
	kRev := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "metered", "--role", "member"))
	if st, _, _ := rawInit(t, p2.URL+"/mcp", kRev, nil); st != http.StatusOK {
		t.Fatalf("fresh key on replica 2: %d", st)
	}
	code, b = apiDo(t, http.MethodGet, p1.URL+"/api/tenants/metered/keys", testAdminKey, "")
	var listed struct{ Keys []struct{ ID, Prefix string } }
	if err := json.Unmarshal(b, &listed); err != nil {
		t.Fatalf("key list answer: %v: %s", err, b)
	}
	id := ""
	for _, k := range listed.Keys {
		if strings.HasPrefix(kRev, k.Prefix) && k.Prefix != "" {
			id = k.ID
		}
	}
	if code != 200 || id == "" {
		t.Fatalf("finding the key: %d %s", code, b)
	}
	if code, b := apiDo(t, http.MethodDelete, p1.URL+"/api/tenants/metered/keys/"+id, testAdminKey, ""); code/100 != 2 {
		t.Fatalf("revoking through replica 1: %d %s", code, b)
	}
	took := waitFor(t, 3*time.Second, "replica 2 refuses the revoked key", func() bool {
		st, _, _ := rawInit(t, p2.URL+"/mcp", kRev, nil)
		return st == http.StatusUnauthorized
	})
	t.Logf("key revocation reached the other replica after %s (store poll: 30s; key cache: 1s)", took)

	// A logout on replica 1 ends the session on replica 2 at once: access
	// tokens are not cached, and the store is polled only every 30s, so
	// only the Redis broadcast can do this within the bound below.
	code, b = apiDo(t, http.MethodPost, p1.URL+"/api/auth/login", "", `{"tenant":"default","user":"owner","password":"correct horse battery staple"}`)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if code != 200 || json.Unmarshal(b, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("login: %d %s", code, b)
	}
	if st, _, _ := rawInit(t, p2.URL+"/mcp", tok.AccessToken, nil); st != http.StatusOK {
		t.Fatalf("access token on replica 2: %d", st)
	}
	if code, b := apiDo(t, http.MethodPost, p1.URL+"/api/auth/logout", tok.AccessToken, ""); code/100 != 2 {
		t.Fatalf("logout: %d %s", code, b)
	}
	took = waitFor(t, 5*time.Second, "replica 2 refuses the logged-out token", func() bool {
		st, _, _ := rawInit(t, p2.URL+"/mcp", tok.AccessToken, nil)
		return st == http.StatusUnauthorized
	})
	t.Logf("logout reached the other replica after %s (store poll: 30s)", took)
}

// TestOIDCEndToEnd accepts bearer JWTs of an external identity provider on
// the real binary: keys come only from the configured JWKS URL, the tenant
// from a claim, and the classic forgeries are refused.
func TestOIDCEndToEnd(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	defer idp.Close()
	var attackerHits atomic.Int32
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		otherSet, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &other.PublicKey, KeyID: "evil", Algorithm: "RS256", Use: "sig"}}})
		_, _ = w.Write(otherSet)
	}))
	defer attacker.Close()

	env := secEnv(t)
	cfgPath := writeConfig(t, fmt.Sprintf("[auth.oidc]\nissuer = \"https://idp.example.test\"\naudience = \"mcpedge-test\"\njwks_url = %q\n", idp.URL))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "lattice")

	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "https://idp.example.test", "aud": "mcpedge-test", "sub": "alice",
			"tenant": "acme", "role": "member", "exp": time.Now().Add(10 * time.Minute).Unix(), "iat": time.Now().Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(c jwt.MapClaims, key *rsa.PrivateKey, hdr map[string]any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "k1"
		for k, v := range hdr {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(claims(nil), priv, nil)
	if st, _, body := rawInit(t, p.URL+"/mcp", good, nil); st != http.StatusOK {
		t.Fatalf("a valid IdP token: %d %v", st, body)
	}
	cs, err := connectAs(t, p.URL+"/mcp", good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, cs); !names["lattice__lattice_path"] {
		t.Errorf("the IdP user's tenant catalog: %v", names)
	}

	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(pubPEM)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	cases := map[string]struct {
		token string
		want  int
	}{
		"alg none":                  {none, 401},
		"HS256 with the public key": {hs, 401},
		"expired":                   {sign(claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), priv, nil), 401},
		"not yet valid":             {sign(claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), priv, nil), 401},
		"no expiry":                 {sign(claims(func(c jwt.MapClaims) { delete(c, "exp") }), priv, nil), 401},
		"wrong issuer":              {sign(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.test" }), priv, nil), 401},
		"wrong audience":            {sign(claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" }), priv, nil), 401},
		"another key":               {sign(claims(nil), other, nil), 401},
		"kid elsewhere (jku)":       {sign(claims(nil), other, map[string]any{"kid": "evil", "jku": attacker.URL}), 401},
		"unknown tenant":            {sign(claims(func(c jwt.MapClaims) { c["tenant"] = "nonesuch" }), priv, nil), 403},
	}
	for name, c := range cases {
		if st, _, body := rawInit(t, p.URL+"/mcp", c.token, map[string]string{"X-Tenant": "acme"}); st != c.want {
			t.Errorf("%s: status %d, want %d (%v)", name, st, c.want, body)
		}
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the gateway fetched keys from a URL named in a token (%d requests)", n)
	}
}

// TestLatticeTenancyEndToEnd: stored lattices belong to the caller's
// tenant, survive a restart (they live in the store), and another tenant's
// id answers like a missing one.
func TestLatticeTenancyEndToEnd(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "")
	p := startServe(t, env, "--config", cfgPath)
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "lattice")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "lattice")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "member"))

	code, b := apiDo(t, http.MethodPost, p.URL+"/api/lattices", keyA, `{"name":"grid","dims":[20,20],"boundary":"open"}`)
	if code/100 != 2 {
		t.Fatalf("create: %d %s", code, b)
	}
	var created struct{ ID string }
	if json.Unmarshal(b, &created) != nil || created.ID == "" {
		t.Fatalf("create answer: %s", b)
	}
	if code, b := apiDo(t, http.MethodGet, p.URL+"/api/lattices", keyB, ""); code != 200 || strings.Contains(string(b), created.ID) {
		t.Errorf("beta lists acme's lattice: %d %s", code, b)
	}
	codeOther, _ := apiDo(t, http.MethodGet, p.URL+"/api/lattices/"+created.ID, keyB, "")
	missing := created.ID[:len(created.ID)-4] + "0000"
	if missing == created.ID {
		missing = created.ID[:len(created.ID)-4] + "1111"
	}
	codeNone, _ := apiDo(t, http.MethodGet, p.URL+"/api/lattices/"+missing, keyB, "")
	if codeOther != http.StatusNotFound || codeNone != http.StatusNotFound {
		t.Errorf("another tenant's id %d, a missing id %d; want 404 for both", codeOther, codeNone)
	}
	path := `{"from":[0,0],"to":[19,19]}`
	if code, b := apiDo(t, http.MethodPost, p.URL+"/api/lattices/"+created.ID+"/path", keyA, path); code != 200 || !strings.Contains(string(b), `"length":38`) {
		t.Errorf("path on acme's lattice: %d %s", code, b)
	}

	// A graceful stop flushes the audit log (a crash may lose the last
	// flush interval's entries; see docs/security.md).
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	p2 := startServe(t, env, "--config", cfgPath)
	if code, b := apiDo(t, http.MethodGet, p2.URL+"/api/lattices/"+created.ID, keyA, ""); code != 200 {
		t.Errorf("acme's lattice after a restart: %d %s", code, b)
	}
	out := cli(t, env, "audit", "export", "--config", cfgPath)
	if !strings.Contains(out, `"lattice.not_found"`) {
		t.Errorf("the cross-tenant lookup is not in the audit log:\n%s\n%s", out, cli(t, env, "audit", "verify", "--config", cfgPath))
	}
}

// TestQuotaSurvivesRestart: without Redis the monthly quota is counted in
// memory and saved to the store, so a restart does not hand out a fresh
// month.
func TestQuotaSurvivesRestart(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[plans.metered]\nkey_per_minute = 6000\nkey_burst = 100\ntenant_per_minute = 6000\ntenant_burst = 100\nmonthly_quota = 3\n")
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "lattice")
	cli(t, env, "tenant", "create", "m", "--config", cfgPath, "--plan", "metered", "--upstreams", "lattice")
	key := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "m", "--role", "member"))
	call := func(url string) error {
		cs, err := connectAs(t, url+"/mcp", key, nil)
		if err != nil {
			return err
		}
		_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "lattice__lattice_list", Arguments: map[string]any{}})
		return err
	}
	for i := range 2 {
		if err := call(p.URL); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	p2 := startServe(t, env, "--config", cfgPath)
	p2.waitReadyAuth(t, testAdminKey, "lattice")
	if err := call(p2.URL); err != nil {
		t.Fatalf("third call (after the restart): %v", err)
	}
	if err := call(p2.URL); err == nil || !strings.Contains(err.Error(), "Too Many Requests") {
		t.Fatalf("fourth call: %v, want the quota refusal", err)
	}
}

// TestCORS: a browser page from a configured origin gets its preflight
// answered without credentials and can read the MCP headers; any other
// origin is refused before authentication.
func TestCORS(t *testing.T) {
	env := secEnv(t)
	p := startServe(t, env, "--config", writeConfig(t, "[server]\nallowed_origins = [\"https://app.example.test\"]\n"))
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, p.URL+"/mcp", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := pre("https://app.example.test")
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example.test" ||
		!strings.Contains(strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from an allowed origin: %d %v", ok.StatusCode, ok.Header)
	}
	if bad := pre("https://evil.example.test"); bad.StatusCode != http.StatusForbidden || bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", bad.StatusCode, bad.Header)
	}
	st, h, _ := rawInit(t, p.URL+"/mcp", testAdminKey, map[string]string{"Origin": "https://app.example.test"})
	if st != 200 || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("a request from an allowed origin: %d %v", st, h)
	}
}

// TestNodeClientWithKey: the official TypeScript SDK client, given an API
// key, lists and calls through an authenticating gateway; without the key
// it is refused.
func TestNodeClientWithKey(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "ev")
	res := nodeclient.Run(t, p.URL+"/mcp", "call", map[string]any{"name": "ev__echo", "arguments": map[string]any{"message": "from node"}},
		nodeclient.WithHeader("Authorization", "Bearer "+testAdminKey))
	if b, _ := json.Marshal(res["result"]); !strings.Contains(string(b), "Echo: from node") {
		t.Errorf("node client through auth: %v", res)
	}
	if _, err := nodeclient.Try(t, p.URL+"/mcp", "list", nil); err == nil {
		t.Errorf("node client without a key was served")
	}
}

// TestBadTokenFloodThrottled: an address that keeps presenting bad
// credentials is slowed down (429) before they are looked up; a good
// credential from another address is unaffected.
func TestBadTokenFloodThrottled(t *testing.T) {
	env := secEnv(t)
	p := startServe(t, env, "--config", writeConfig(t, "[limits]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"))
	throttled := 0
	for i := range 60 {
		st, h, _ := rawInit(t, p.URL+"/mcp", fmt.Sprintf("mcpe_guess%036d", i), map[string]string{"X-Forwarded-For": "203.0.113.50"})
		if st == http.StatusTooManyRequests {
			throttled++
			if h.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		} else if st != http.StatusUnauthorized {
			t.Fatalf("bad key: %d", st)
		}
	}
	if throttled < 20 {
		t.Errorf("only %d of 60 bad attempts throttled", throttled)
	}
	if st, _, _ := rawInit(t, p.URL+"/mcp", testAdminKey, map[string]string{"X-Forwarded-For": "203.0.113.51"}); st != http.StatusOK {
		t.Errorf("a good key from another address: %d", st)
	}
}
