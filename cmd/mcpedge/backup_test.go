package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/mcpedge/mcpedge/internal/faultproxy"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// TestBackupRestoreUnderLoadSQLite and …Postgres run the real binary: a
// gateway serves tool calls and admin changes while `mcpedge backup`
// copies its store and offline queue; `mcpedge restore` puts the backup
// into a fresh store, `mcpedge audit verify` passes on it, and a gateway
// started on it has the tenants made before the backup (and none that
// never existed), authenticates the old API keys, and has the lattice and
// the queued calls.
func TestBackupRestoreUnderLoadSQLite(t *testing.T) {
	backupUnderLoad(t, "", "", secEnv(t))
}

func TestBackupRestoreUnderLoadPostgres(t *testing.T) {
	env := append(secEnv(t), "MCPEDGE_STORE_KEY=YmFja3VwLXRlc3QtbWFzdGVyLWtleS0zMi1ieXRlcyE=")
	backupUnderLoad(t, storetest.PostgresURL(t), storetest.PostgresURL(t), env)
}

// backupConfig is a gateway's config: its data directory and store, the
// everything server as "ev", and as "dq" behind a fault proxy with its
// tools deferrable (calls are queued while the proxy resets them, and
// not retried for an hour).
func backupConfig(t *testing.T, dir, storeURL, dqURL string) string {
	s := fmt.Sprintf("[server]\ndata_dir = %q\n", dir)
	if storeURL != "" {
		s += fmt.Sprintf("[store]\nurl = %q\n", storeURL)
	}
	s += "[queue]\nbackoff_min = \"1h\"\nbackoff_max = \"1h\"\n[metering]\nflush_interval = \"1s\"\n"
	s += everythingBlock(t, "ev")
	s += `
[[upstreams]]
name = "dq"
transport = "http"
url = "` + dqURL + `"
timeout = "5s"
retries = 0
deferrable = ["echo"]

[upstreams.breaker]
failures = 1
open_for = "1h"
`
	return writeConfig(t, s)
}

// httpJSON is apiDo for goroutines: errors are returned, not fatal.
func httpJSON(method, url, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func backupUnderLoad(t *testing.T, storeA, storeB string, env []string) {
	px, dqURL := nodeclient.StartEverythingProxied(t)
	dirA := t.TempDir()
	cfgA := backupConfig(t, dirA, storeA, dqURL)
	pA := startServe(t, env, "--config", cfgA)
	pA.waitReadyAuth(t, testAdminKey, "ev", "dq")
	cli(t, env, "tenant", "create", "acme", "--config", cfgA, "--upstreams", "ev,dq,lattice", "--plan", "enterprise")
	keyA := lastLine(cli(t, env, "key", "create", "--config", cfgA, "--tenant", "acme", "--role", "member"))

	// A stored lattice.
	code, b := apiDo(t, http.MethodPost, pA.URL+"/api/lattices", keyA, `{"name":"grid","dims":[4,4],"boundary":"open"}`)
	var lat struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal(b, &lat) != nil || lat.ID == "" {
		t.Fatalf("POST /api/lattices: %d %s", code, b)
	}
	// Two queued calls: dq is unreachable, and they wait an hour.
	cs, err := connectAs(t, pA.URL+"/mcp", keyA, nil)
	if err != nil {
		t.Fatal(err)
	}
	px.Set(faultproxy.Reset())
	var queued []string
	for i := range 2 {
		res, err := cs.CallTool(tctx(t), &mcp.CallToolParams{Name: "dq__echo", Arguments: map[string]any{"message": fmt.Sprint("queued-", i)}})
		id, _ := queueAnswer(t, "a call of dq", res, err)
		queued = append(queued, id)
	}

	// Load: tool calls on one session, tenants and keys made through the
	// admin API, both until the backup is done (bounded in count).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	calls := 0
	type made struct{ tenant, key string }
	var created []made
	loadErr := make(chan error, 2)
	wg.Go(func() {
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": fmt.Sprint("load-", i)}})
			if err != nil || res.IsError {
				loadErr <- fmt.Errorf("call %d: %v %v", i, res, err)
				return
			}
			mu.Lock()
			calls++
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for i := 0; i < 300; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("load-%d", i)
			code, b, err := httpJSON(http.MethodPost, pA.URL+"/api/tenants", testAdminKey, `{"name":"`+name+`","upstreams":["ev"]}`)
			if err != nil || code != http.StatusCreated {
				loadErr <- fmt.Errorf("POST /api/tenants: %d %s %v", code, b, err)
				return
			}
			code, b, err = httpJSON(http.MethodPost, pA.URL+"/api/tenants/"+name+"/keys", testAdminKey, `{"name":"k","role":"member"}`)
			var k struct{ Secret string }
			if err != nil || code != http.StatusCreated || json.Unmarshal(b, &k) != nil || k.Secret == "" {
				loadErr <- fmt.Errorf("POST keys: %d %s %v", code, b, err)
				return
			}
			mu.Lock()
			created = append(created, made{name, k.Secret})
			mu.Unlock()
		}
	})
	waitFor(t, 60*time.Second, "some load", func() bool {
		select {
		case err := <-loadErr:
			t.Fatalf("load: %v", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return calls >= 20 && len(created) >= 3
	})
	mu.Lock()
	before := slices.Clone(created)
	mu.Unlock()
	out := filepath.Join(t.TempDir(), "mcpedge.mcpbak")
	manifestJSON := cli(t, env, "backup", "--out", out, "--config", cfgA, "--json")
	// The load goes on a little after the backup, then stops.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	select {
	case err := <-loadErr:
		t.Fatalf("load: %v", err)
	default:
	}
	var m struct {
		Engine        string `json:"engine"`
		SchemaVersion int    `json:"schema_version"`
		Tables        []struct {
			Name string `json:"name"`
			Rows int64  `json:"rows"`
		} `json:"tables"`
		Queue *struct{} `json:"queue"`
	}
	if err := json.Unmarshal([]byte(manifestJSON), &m); err != nil {
		t.Fatalf("backup --json: %v\n%s", err, manifestJSON)
	}
	rows := map[string]int64{}
	for _, tb := range m.Tables {
		rows[tb.Name] = tb.Rows
	}
	if rows["tenants"] < int64(len(before)+2) || rows["audit"] == 0 || rows["lattices"] != 1 || m.Queue == nil {
		t.Fatalf("manifest: %s", manifestJSON)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v", st, err)
	}
	if v := cli(t, env, "backup", "verify", out, "--config", cfgA); !strings.Contains(v, "is whole") {
		t.Errorf("backup verify: %s", v)
	}
	t.Logf("backed up under load: %d calls and %d tenants made in all, %d tenants before the backup; manifest %s", calls, len(created), len(before), manifestJSON)

	// Restore into a fresh store with the source's keys.
	dirB := t.TempDir()
	if storeA == "" {
		copyFile(t, filepath.Join(dirA, "store.key"), filepath.Join(dirB, "store.key"))
	}
	copyFile(t, filepath.Join(dirA, "queue.key"), filepath.Join(dirB, "queue.key"))
	cfgB := backupConfig(t, dirB, storeB, dqURL)
	if out := cli(t, env, "restore", out, "--config", cfgB); !strings.Contains(out, "restored") || !strings.Contains(out, "offline queue: 2 entries") {
		t.Errorf("restore: %s", out)
	}
	if out := cli(t, env, "audit", "verify", "--config", cfgB); !strings.Contains(out, "audit chain OK") {
		t.Errorf("audit verify of the restored store: %s", out)
	}
	// Restoring again is refused: the store is not empty now.
	if out, err := cliErr(env, "restore", out, "--config", cfgB); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("a second restore: %v %s", err, out)
	}

	pB := startServe(t, env, "--config", cfgB)
	pB.waitReadyAuth(t, testAdminKey, "ev")
	code, b = apiDo(t, http.MethodGet, pB.URL+"/api/tenants", testAdminKey, "")
	var list struct{ Tenants []struct{ Name string } }
	if code != 200 || json.Unmarshal(b, &list) != nil {
		t.Fatalf("GET /api/tenants on the restored gateway: %d %s", code, b)
	}
	tenants := list.Tenants
	have := map[string]bool{}
	for _, tn := range tenants {
		have[tn.Name] = true
	}
	for _, want := range append([]string{"acme"}, func() (n []string) {
		for _, c := range before {
			n = append(n, c.tenant)
		}
		return n
	}()...) {
		if !have[want] {
			t.Errorf("tenant %s, made before the backup, is not in the restored store", want)
		}
	}
	for name := range have {
		if name != "acme" && name != "default" && !slices.ContainsFunc(created, func(c made) bool { return c.tenant == name }) {
			t.Errorf("the restored store has a tenant %s that was never made", name)
		}
	}
	if int64(len(tenants)) != rows["tenants"] {
		t.Errorf("%d tenants restored, the manifest counted %d", len(tenants), rows["tenants"])
	}
	// Old API keys authenticate.
	csB, err := connectAs(t, pB.URL+"/mcp", keyA, nil)
	if err != nil {
		t.Fatalf("acme's key on the restored gateway: %v", err)
	}
	if res, err := csB.CallTool(tctx(t), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "after"}}); err != nil || res.IsError {
		t.Fatalf("a call on the restored gateway: %v %v", res, err)
	}
	for _, c := range before {
		if code, b := apiDo(t, http.MethodGet, pB.URL+"/api/me", c.key, ""); code != 200 {
			t.Errorf("the key of %s, made before the backup: %d %s", c.tenant, code, b)
		}
	}
	// The lattice and the queued calls.
	if code, b := apiDo(t, http.MethodGet, pB.URL+"/api/lattices", keyA, ""); code != 200 || !strings.Contains(string(b), lat.ID) {
		t.Errorf("lattices on the restored gateway: %d %s", code, b)
	}
	code, b = apiDo(t, http.MethodGet, pB.URL+"/api/queue", keyA, "")
	for _, id := range queued {
		if code != 200 || !strings.Contains(string(b), id) {
			t.Errorf("queued call %s on the restored gateway: %d %s", id, code, b)
		}
	}
	_ = cs.Close()
	_ = csB.Close()
}

// TestBackupCLIRefusals: the commands' errors for what an operator gets
// wrong, each with nothing written.
func TestBackupCLIRefusals(t *testing.T) {
	env := secEnv(t)
	dirA := t.TempDir()
	cfgA := writeConfig(t, fmt.Sprintf("[server]\ndata_dir = %q\n", dirA))
	cli(t, env, "migrate", "--config", cfgA)
	cli(t, env, "tenant", "create", "acme", "--config", cfgA)
	out := filepath.Join(t.TempDir(), "b.mcpbak")
	keyFile := filepath.Join(t.TempDir(), "backup.key")
	if err := os.WriteFile(keyFile, []byte("0123456789abcdef0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(otherKey, []byte("fedcba9876543210fedcba9876543210"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, env, "backup", "--out", out, "--config", cfgA, "--key-file", keyFile)
	good, _ := os.ReadFile(out)

	refused := func(what, want string, args ...string) {
		t.Helper()
		o, err := cliErr(env, args...)
		if err == nil || !strings.Contains(o, want) {
			t.Errorf("%s: %v %s, want %q", what, err, o, want)
		}
	}
	refused("no --out", "give the file to write with --out FILE", "backup", "--config", cfgA)
	refused("an existing file", "exists; backups are not overwritten", "backup", "--out", out, "--config", cfgA)
	refused("verify without the backup key", "was encrypted with a backup key: give it with --key-file", "backup", "verify", out, "--config", cfgA)
	if o := cli(t, env, "backup", "verify", out, "--config", cfgA, "--key-file", keyFile); !strings.Contains(o, "is whole") {
		t.Errorf("verify: %s", o)
	}

	// Without the source's store.key in the new data directory: refused
	// before the backup is read.
	dirC := t.TempDir()
	cfgC := writeConfig(t, fmt.Sprintf("[server]\ndata_dir = %q\n", dirC))
	refused("no master key", "store.key does not exist", "restore", out, "--config", cfgC, "--key-file", keyFile)
	if left, _ := os.ReadDir(dirC); len(left) > 0 {
		t.Errorf("the refused restore left %v in the data directory", left)
	}

	dirB := t.TempDir()
	cfgB := writeConfig(t, fmt.Sprintf("[server]\ndata_dir = %q\n", dirB))
	copyFile(t, filepath.Join(dirA, "store.key"), filepath.Join(dirB, "store.key"))
	refused("another backup key", "wrong key: this backup was encrypted with a backup key", "restore", out, "--config", cfgB, "--key-file", otherKey)
	cut := filepath.Join(t.TempDir(), "cut.mcpbak")
	os.WriteFile(cut, good[:len(good)-100], 0o600)
	refused("a file cut short", "damaged or was tampered with", "restore", cut, "--config", cfgB, "--key-file", keyFile)
	refused("not a backup", "not an mcpedge backup file", "restore", cfgA, "--config", cfgB)
	if left, _ := os.ReadDir(dirB); len(left) != 1 {
		t.Errorf("refused restores left %v in the data directory", left)
	}
	// Into the source itself: not empty.
	refused("a used store", "not empty", "restore", out, "--config", cfgA, "--key-file", keyFile)

	if o := cli(t, env, "restore", out, "--config", cfgB, "--key-file", keyFile); !strings.Contains(o, "restored") {
		t.Errorf("restore: %s", o)
	}
	if o := cli(t, env, "tenant", "ls", "--config", cfgB); !strings.Contains(o, "acme") {
		t.Errorf("tenant ls after the restore: %s", o)
	}
}

// TestScheduledBackupsOneReplica: two replicas on one PostgreSQL store
// with [backup] interval set: each due backup is made by exactly one of
// them (into its own directory; the first at the start), and both report
// its success on /metrics; the backup verifies.
func TestScheduledBackupsOneReplica(t *testing.T) {
	pg := storetest.PostgresURL(t)
	env := append(secEnv(t), "MCPEDGE_STORE_KEY=c2NoZWR1bGVkLWJhY2t1cHMtbWFzdGVyLWtleS0zMiE=")
	var cfgs, dirs []string
	for range 2 {
		dir := t.TempDir()
		dirs = append(dirs, filepath.Join(dir, "backups"))
		cfgs = append(cfgs, writeConfig(t, fmt.Sprintf("[server]\ndata_dir = %q\n[store]\nurl = %q\n[backup]\ninterval = \"1m\"\nkeep = 2\n", dir, pg)))
	}
	var ps []*gatewayProc
	for _, c := range cfgs {
		ps = append(ps, startServe(t, env, "--config", c))
	}
	files := func() (all []string) {
		for _, d := range dirs {
			es, _ := os.ReadDir(d)
			for _, e := range es {
				if strings.HasSuffix(e.Name(), ".mcpbak") {
					all = append(all, filepath.Join(d, e.Name()))
				}
			}
		}
		return all
	}
	waitFor(t, 60*time.Second, "a scheduled backup", func() bool { return len(files()) > 0 })
	for i, p := range ps {
		waitFor(t, 30*time.Second, fmt.Sprint("replica ", i, " reporting the success"), func() bool {
			return metricValue(t, p.URL, "mcpedge_backup_last_success_timestamp_seconds") > 0
		})
		if v := metricValue(t, p.URL, "mcpedge_backup_interval_seconds"); v != 60 {
			t.Errorf("replica %d: interval gauge %v", i, v)
		}
		if v := metricValue(t, p.URL, "mcpedge_backup_failures_total"); v != 0 {
			t.Errorf("replica %d: failures %v", i, v)
		}
	}
	// One backup per run: a slow machine may have reached the second
	// run by now, but no two backups are less than the interval apart.
	f := files()
	var at []time.Time
	for _, p := range f {
		ts, err := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "mcpedge-backup-"), ".mcpbak"))
		if err != nil {
			t.Fatalf("backup file name %s: %v", p, err)
		}
		at = append(at, ts)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(at); i++ {
		if at[i].Sub(at[i-1]) < 59*time.Second {
			t.Errorf("backups %v and %v: two in one interval", at[i-1], at[i])
		}
	}
	if o := cli(t, env, "backup", "verify", f[0], "--config", cfgs[0]); !strings.Contains(o, "is whole") {
		t.Errorf("verify: %s", o)
	}
	made := 0
	for _, p := range ps {
		made += strings.Count(p.stderr.String(), "scheduled backup made")
	}
	if made != len(f) {
		t.Errorf("%d backups logged, %d files", made, len(f))
	}
}
