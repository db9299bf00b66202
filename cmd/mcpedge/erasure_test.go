package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/deferq"
	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
	"github.com/mcpedge/mcpedge/internal/store/open"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
	"github.com/mcpedge/mcpedge/internal/tenantexport"
)

// unpack reads an export archive: its manifest (checked with
// tenantexport.Check) and each file's records, after checking each
// file's SHA-256, size and count against the manifest by hand.
func unpack(t *testing.T, archive []byte) (*tenantexport.Manifest, map[string][]map[string]any) {
	t.Helper()
	m, err := tenantexport.Check(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("the archive fails its check: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	body := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		body[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	files := map[string][]map[string]any{}
	for _, fi := range m.Files {
		b := body[fi.Name]
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != fi.SHA256 || int64(len(b)) != fi.Bytes {
			t.Errorf("%s: sha256 %x (%d bytes), manifest %s (%d)", fi.Name, sum, len(b), fi.SHA256, fi.Bytes)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var row map[string]any
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("%s: %v", fi.Name, err)
			}
			files[fi.Name] = append(files[fi.Name], row)
		}
		if int64(len(files[fi.Name])) != fi.Records {
			t.Errorf("%s: %d records, manifest %d", fi.Name, len(files[fi.Name]), fi.Records)
		}
	}
	return m, files
}

// TestTenantExportEraseEndToEnd runs the real binary, multi-tenant: a
// tenant with users, keys, a virtual server, calls (audit and usage), a
// login session and an offline-queue entry is exported (REST and CLI:
// checksums, contents, no secrets), then erased: its rows are gone from
// every table, its audit entries lose their personal fields while `audit
// verify` passes, its data key is gone so a copy of the queue taken
// before can not be read, its keys stop working; another tenant is
// untouched and its keys still authenticate. Bad input: another tenant's
// export (403), an unknown tenant, erasing twice.
func TestTenantExportEraseEndToEnd(t *testing.T) {
	px, evURL := nodeclient.StartEverythingProxied(t)
	env := append(secEnv(t), "MCPEDGE_PASSWORD=alice's long password")
	dataDir := filepath.Join(strings.TrimPrefix(env[0], "XDG_DATA_HOME="), "mcpedge")
	cfgPath := writeConfig(t, "[queue]\nmax_attempts = 1000\nbackoff_min = \"200ms\"\nbackoff_max = \"1s\"\n"+deferrableEv(evURL, `"echo"`))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReadyAuth(t, testAdminKey, "ev")
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	cli(t, env, "user", "create", "--tenant", "acme", "alice", "--role", "admin", "--config", cfgPath)
	memberA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member", "--name", "acme-ci"))
	adminA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "admin"))
	memberB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "member"))
	adminB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "admin"))
	var acme struct{ ID string }
	_, b := apiDo(t, http.MethodGet, p.URL+"/api/tenants/acme", testAdminKey, "")
	if err := json.Unmarshal(b, &acme); err != nil || acme.ID == "" {
		t.Fatalf("GET acme: %s", b)
	}
	// A login session of alice's.
	if code, out := apiDo(t, http.MethodPost, p.URL+"/api/auth/login", "", `{"tenant":"acme","user":"alice","password":"alice's long password"}`); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	// Calls, then one queued while the upstream is down (beta's too).
	a, b2 := newQueueClient(t, p.URL+"/mcp", memberA), newQueueClient(t, p.URL+"/mcp", memberB)
	for range 2 {
		if res, err := a.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "acme-hello"}}); err != nil || res.IsError {
			t.Fatalf("acme's call: %v %v", res, err)
		}
	}
	px.Set(faultproxy.Reset())
	res, err := a.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "acme-queued-secret"}})
	idA, _ := queueAnswer(t, "acme's queued call", res, err)
	res, err = b2.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "beta-queued"}})
	idB, _ := queueAnswer(t, "beta's queued call", res, err)

	// Export over REST by acme's admin.
	code, archive := apiDo(t, http.MethodGet, p.URL+"/api/tenants/acme/export", adminA, "")
	if code != 200 {
		t.Fatalf("export: %d %s", code, archive)
	}
	m, files := unpack(t, archive)
	if m.Tenant.ID != acme.ID || m.Tenant.Name != "acme" || m.Format != tenantexport.Format || m.Version != tenantexport.Version {
		t.Errorf("manifest: %+v", m)
	}
	has := func(file, key, value string) bool {
		for _, r := range files[file] {
			if s, _ := r[key].(string); s == value {
				return true
			}
		}
		return false
	}
	for _, c := range [][3]string{{"users.jsonl", "name", "alice"}, {"api_keys.jsonl", "name", "acme-ci"}, {"virtual_servers.jsonl", "name", "all"},
		{"audit.jsonl", "action", "tool.call"}, {"usage_hourly.jsonl", "tool", "echo"}, {"queue.jsonl", "id", idA}, {"tenant.jsonl", "name", "acme"}} {
		if !has(c[0], c[1], c[2]) {
			t.Errorf("%s has no record with %s = %q: %v", c[0], c[1], c[2], files[c[0]])
		}
	}
	if len(files["refresh_tokens.jsonl"]) != 1 {
		t.Errorf("refresh_tokens.jsonl: %v", files["refresh_tokens.jsonl"])
	}
	if q := files["queue.jsonl"]; len(q) != 1 || !strings.Contains(toJSON(q[0]["arguments"]), "acme-queued-secret") {
		t.Errorf("queue.jsonl: %v", q)
	}
	for _, secret := range []string{memberA, adminA, memberB, "alice's long password", "$argon2id", idB, "beta-queued"} {
		if bytes.Contains(archive, []byte(secret)) || strings.Contains(toJSON(files), secret) {
			t.Errorf("the export holds %q", secret)
		}
	}
	for _, r := range files["api_keys.jsonl"] {
		if _, ok := r["hash"]; ok {
			t.Errorf("a key's hash is exported: %v", r)
		}
	}
	// The CLI writes the same archive (mode 0600).
	out := filepath.Join(t.TempDir(), "acme.zip")
	cli(t, env, "tenant", "export", "acme", "--out", out, "--config", cfgPath)
	fileArchive, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("the archive's mode is %v", fi.Mode())
	}
	if _, cliFiles := unpack(t, fileArchive); len(cliFiles["queue.jsonl"]) != 1 || len(cliFiles["users.jsonl"]) != 1 {
		t.Errorf("CLI export: %d queue entries, %d users", len(cliFiles["queue.jsonl"]), len(cliFiles["users.jsonl"]))
	}

	// Bad input.
	for _, ref := range []string{"beta", "nope"} {
		if code, out := apiDo(t, http.MethodGet, p.URL+"/api/tenants/"+ref+"/export", adminA, ""); code != 403 {
			t.Errorf("acme's admin exports %s: %d %s", ref, code, out)
		}
	}
	if code, _ := apiDo(t, http.MethodGet, p.URL+"/api/tenants/acme/export", memberA, ""); code != 403 {
		t.Errorf("acme's member exports: %d", code)
	}
	if code, _ := apiDo(t, http.MethodGet, p.URL+"/api/tenants/nope/export", testAdminKey, ""); code != 404 {
		t.Errorf("the operator exports an unknown tenant: %d", code)
	}
	if out, err := cliErr(env, "tenant", "export", "nope", "--config", cfgPath); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("CLI export of an unknown tenant: %v %s", err, out)
	}
	if code, _ := apiDo(t, http.MethodDelete, p.URL+"/api/tenants/acme?erase=true", adminA, ""); code != 403 {
		t.Errorf("acme's admin erases acme: %d", code)
	}

	// A copy of the queue as it is now: what another replica or a backup
	// would keep.
	copyDir := t.TempDir()
	copyQueue(t, dataDir, copyDir)

	// Erase over REST, as the operator.
	code, eb := apiDo(t, http.MethodDelete, p.URL+"/api/tenants/acme?erase=true", testAdminKey, "")
	var er store.Erasure
	if code != 200 || json.Unmarshal(eb, &er) != nil || er.TenantID != acme.ID || er.AuditEntries < 3 || er.Rows["queue_entries"] != 1 {
		t.Fatalf("erase: %d %s", code, eb)
	}
	// Twice: refused, saying when.
	if out, err := cliErr(env, "tenant", "rm", "acme", "--erase", "--yes", "--config", cfgPath); err == nil || !strings.Contains(out, "was erased at") {
		t.Errorf("erase twice: %v %s", err, out)
	}
	if code, out := apiDo(t, http.MethodDelete, p.URL+"/api/tenants/acme?erase=true", testAdminKey, ""); code != 404 || !strings.Contains(string(out), "was erased") {
		t.Errorf("erase twice over REST: %d %s", code, out)
	}

	// Gone from every table.
	db, err := sql.Open("sqlite", filepath.Join(dataDir, "mcpedge.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string, args ...any) int {
		var n int
		if err := db.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	for _, table := range []string{"users", "api_keys", "refresh_tokens", "mcp_sessions", "virtual_servers", "rules", "usage", "usage_hourly", "lattices", "devices", "enroll_tokens", "tenant_keys"} {
		if n := count(`SELECT COUNT(*) FROM `+table+` WHERE tenant_id = ?`, acme.ID); n != 0 {
			t.Errorf("%s: %d rows of acme left", table, n)
		}
	}
	if n := count(`SELECT COUNT(*) FROM tenants WHERE id = ?`, acme.ID); n != 0 {
		t.Error("the tenant row is left")
	}
	if n := count(`SELECT COUNT(*) FROM audit WHERE tenant_id = ? AND (erased = 0 OR actor <> '' OR client_ip <> '' OR detail IS NOT NULL OR pii_salt IS NOT NULL) AND action <> 'tenant.erase'`, acme.ID); n != 0 {
		t.Errorf("%d audit entries of acme keep personal fields", n)
	}
	if n := count(`SELECT COUNT(*) FROM audit WHERE tenant_id = ? AND action = 'tenant.erase' AND erased = 0`, acme.ID); n != 1 {
		t.Errorf("%d tenant.erase entries", n)
	}
	if n := count(`SELECT COUNT(*) FROM audit WHERE CAST(detail AS TEXT) LIKE '%alice%' OR actor IN (SELECT id FROM api_keys WHERE tenant_id = ?)`, acme.ID); n != 0 {
		t.Errorf("%d audit entries still name alice", n)
	}
	if n := count(`SELECT COUNT(*) FROM tenant_erasures WHERE tenant_id = ?`, acme.ID); n != 1 {
		t.Error("the erasure is not recorded")
	}
	qdb, err := sql.Open("sqlite", filepath.Join(dataDir, queueDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer qdb.Close()
	var left int
	if err := qdb.QueryRow(`SELECT COUNT(*) FROM entries WHERE tenant = ?`, acme.ID).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d queue entries of acme left (%v)", left, err)
	}
	// The copy of the queue holds acme's entry, sealed with a key that
	// no longer exists; beta's opens.
	checkQueueCopy(t, dataDir, copyDir, acme.ID, idA, idB)

	// The chain verifies.
	if out := cli(t, env, "audit", "verify", "--config", cfgPath); !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify: %s", out)
	}
	// So does the verifier docs/operations.md gives for archived exports.
	docVerifier(t, cli(t, env, "audit", "export", "--config", cfgPath))
	// acme's keys are refused; beta's work.
	// (every replica learns of the revocations the erasure recorded
	// within its auth.revocation_poll, as after tenant rm)
	waitFor(t, 30*time.Second, "acme's keys refused", func() bool {
		code, _ := apiDo(t, http.MethodGet, p.URL+"/api/me", adminA, "")
		return code == 401
	})
	if code, out := apiDo(t, http.MethodGet, p.URL+"/api/tenants/beta/users", adminB, ""); code != 200 {
		t.Errorf("beta's admin key after acme's erasure: %d %s", code, out)
	}
	if code, out := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+idB, memberB, ""); code != 200 || !strings.Contains(string(out), idB) {
		t.Errorf("beta's queued call after acme's erasure: %d %s", code, out)
	}
	if cs, err := connectAs(t, p.URL+"/mcp", memberB, nil); err != nil {
		t.Errorf("beta's member key on /mcp: %v", err)
	} else {
		cs.Close()
	}
	code, archive = apiDo(t, http.MethodGet, p.URL+"/api/tenants/beta/export", adminB, "")
	if _, bf := unpack(t, archive); code != 200 || len(bf["api_keys.jsonl"]) != 2 || len(bf["queue.jsonl"]) != 1 {
		t.Errorf("beta's export after acme's erasure: %d, %d keys, %d queued", code, len(bf["api_keys.jsonl"]), len(bf["queue.jsonl"]))
	}
	// The upstream back: beta's entry is delivered.
	px.Set(faultproxy.Pass())
	waitFor(t, 30*time.Second, "beta's entry delivered", func() bool {
		_, out := apiDo(t, http.MethodGet, p.URL+"/api/queue/"+idB, memberB, "")
		return strings.Contains(string(out), `"state":"done"`)
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// copyQueue copies the queue's database and key (a consistent copy:
// VACUUM INTO) to dir.
func copyQueue(t *testing.T, dataDir, dir string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dataDir, queueDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, filepath.Join(dir, queueDBFile)); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "queue.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "queue.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkQueueCopy opens the copied queue with the live store's tenant
// keys: acme's entry does not open (its key is destroyed), beta's does.
func checkQueueCopy(t *testing.T, dataDir, dir, acmeID, idA, idB string) {
	t.Helper()
	ctx := context.Background()
	st, err := open.Open(ctx, "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	box, err := sealbox.New(ctx, sealbox.FileKey(filepath.Join(dir, "queue.key")), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := deferq.Options(config.DefaultQueue())
	opts.TenantKeys = st
	q, err := queue.Open(ctx, filepath.Join(dir, queueDBFile), box, &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Get(ctx, acmeID, idA); !errors.Is(err, store.ErrKeyDestroyed) {
		t.Errorf("acme's entry in the copy: %v, want the key destroyed", err)
	}
	info, err := q.Info(ctx, idB)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := q.Get(ctx, info.Tenant, idB); err != nil || !strings.Contains(string(e.Arguments), "beta-queued") {
		t.Errorf("beta's entry in the copy: %+v, %v", e, err)
	}
}

// docVerifier runs the Python verifier of docs/operations.md on a
// whole-chain export (skipped without python3).
func docVerifier(t *testing.T, export string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("no python3: the documented verifier is not run")
		return
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, script, _ := strings.Cut(string(doc), "```python\n")
	script, _, _ = strings.Cut(script, "```")
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(export)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Errorf("the documented verifier after an erasure: %v\n%s", err, out)
	}
}

// TestTenantEraseReplicasPostgres: two gateways share a PostgreSQL store,
// each with its own offline queue. A tenant's call is queued on the
// second; the tenant is erased through the first. The second refuses the
// tenant's keys within its revocation poll, can not open the queued call
// any more (the tenant's key is gone from the shared store) and fails it
// instead of delivering it, while the other tenant's queued call is
// delivered; the chain verifies.
func TestTenantEraseReplicasPostgres(t *testing.T) {
	pg := storetest.PostgresURL(t)
	px, evURL := nodeclient.StartEverythingProxied(t)
	cfgPath := writeConfig(t, fmt.Sprintf("[store]\nurl = %q\n[auth]\nrevocation_poll = \"1s\"\n[queue]\nmax_attempts = 1000\nbackoff_min = \"200ms\"\nbackoff_max = \"1s\"\n", pg)+
		deferrableEv(evURL, `"echo"`))
	env := []string{"MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_STORE_KEY=ZXJhc3VyZS1yZXBsaWNhLXRlc3Qta2V5LTMyYnl0ZXM="}
	p1 := startServe(t, env, "--config", cfgPath)
	data2 := t.TempDir()
	p2 := startServe(t, append(env, "XDG_DATA_HOME="+data2), "--config", cfgPath)
	p1.waitReadyAuth(t, testAdminKey, "ev")
	p2.waitReadyAuth(t, testAdminKey, "ev")
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "ev", "--plan", "enterprise")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "admin"))
	keyB := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "admin"))

	px.Set(faultproxy.Reset())
	a, b := newQueueClient(t, p2.URL+"/mcp", keyA), newQueueClient(t, p2.URL+"/mcp", keyB)
	res, err := a.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "acme-on-p2"}})
	idA, _ := queueAnswer(t, "acme's call on the second replica", res, err)
	res, err = b.cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "beta-on-p2"}})
	idB, _ := queueAnswer(t, "beta's call on the second replica", res, err)
	if code, out := apiDo(t, http.MethodGet, p2.URL+"/api/queue/"+idA, keyA, ""); code != 200 {
		t.Fatalf("acme reads its queued call on p2: %d %s", code, out)
	}

	code, out := apiDo(t, http.MethodDelete, p1.URL+"/api/tenants/acme?erase=true", testAdminKey, "")
	var er store.Erasure
	if code != 200 || json.Unmarshal(out, &er) != nil || er.Rows["queue_entries"] != 0 || er.Rows["api_keys"] != 1 {
		t.Fatalf("erase through p1: %d %s", code, out)
	}
	waitFor(t, 30*time.Second, "acme's key refused on p2", func() bool {
		code, _ := apiDo(t, http.MethodGet, p2.URL+"/api/me", keyA, "")
		return code == 401
	})
	if code, out := apiDo(t, http.MethodGet, p2.URL+"/api/tenants/beta/users", keyB, ""); code != 200 {
		t.Errorf("beta on p2 after acme's erasure: %d %s", code, out)
	}
	// The upstream back: p2 delivers beta's call and fails acme's, which
	// it can no longer open.
	px.Set(faultproxy.Pass())
	waitFor(t, 30*time.Second, "beta's call delivered by p2", func() bool {
		_, out := apiDo(t, http.MethodGet, p2.URL+"/api/queue/"+idB, keyB, "")
		return strings.Contains(string(out), `"state":"done"`)
	})
	qdb, err := sql.Open("sqlite", filepath.Join(data2, "mcpedge", queueDBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer qdb.Close()
	var state, lastErr string
	waitFor(t, 30*time.Second, "acme's call failed on p2", func() bool {
		err := qdb.QueryRow(`SELECT state, last_error FROM entries WHERE id = ?`, idA).Scan(&state, &lastErr)
		return err == nil && state == "failed"
	})
	if !strings.Contains(lastErr, "data key does not exist") {
		t.Errorf("acme's failed entry says %q", lastErr)
	}
	if !strings.Contains(p2.stderr.String(), idA) || strings.Contains(p2.stderr.String(), "acme-on-p2") {
		t.Errorf("p2's log about acme's entry: %s", p2.stderr.String())
	}
	if out := cli(t, env, "audit", "verify", "--config", cfgPath); !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify: %s", out)
	}
}
