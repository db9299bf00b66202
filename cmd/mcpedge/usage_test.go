package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stopGateway sends SIGTERM and waits for a clean exit.
func stopGateway(t *testing.T, p *gatewayProc) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
}

type usageReport struct {
	Total int64 `json:"total"`
	Rows  []struct {
		Period    string `json:"period"`
		Tenant    string `json:"tenant"`
		Actor     string `json:"actor"`
		ActorKind string `json:"actor_kind"`
		Upstream  string `json:"upstream"`
		Tool      string `json:"tool"`
		Outcome   string `json:"outcome"`
		Count     int64  `json:"count"`
	} `json:"rows"`
}

func (r *usageReport) count(upstream, tool, outcome string) int64 {
	var n int64
	for _, row := range r.Rows {
		if row.Upstream == upstream && row.Tool == tool && row.Outcome == outcome {
			n += row.Count
		}
	}
	return n
}

// TestUsageMeteredEndToEnd: with authentication on, every tool call is
// metered once by tenant, key, upstream, tool and outcome (a call of a
// tool that does not exist as denied, as audit records it); GET /api/usage
// shows it at once (the report flushes the replica's counts, although the
// flush interval is an hour), as JSON and CSV, to the operator and to the
// tenant's admin only for its own tenant; a call made just before SIGTERM
// is in the store after the shutdown, as `mcpedge usage` shows.
func TestUsageMeteredEndToEnd(t *testing.T) {
	env := secEnv(t)
	cfgPath := writeConfig(t, "[metering]\nflush_interval = \"1h\"\n"+everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	base := p.URL
	cli(t, env, "tenant", "create", "acme", "--config", cfgPath, "--upstreams", "ev")
	cli(t, env, "tenant", "create", "beta", "--config", cfgPath, "--upstreams", "ev")
	member := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "acme", "--role", "member"))
	admin := lastLine(cli(t, env, "key", "create", "--config", cfgPath, "--tenant", "beta", "--role", "admin"))
	p.waitReadyAuth(t, testAdminKey, "ev")

	cs, err := connectAs(t, base+"/mcp", member, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "hi"}}); err != nil || res.IsError {
			t.Fatalf("call: %v %v", res, err)
		}
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__nonesuch", Arguments: map[string]any{}}); err == nil {
		t.Fatal("a tool that does not exist answered")
	}

	code, b := apiDo(t, http.MethodGet, base+"/api/usage?tenant=acme", testAdminKey, "")
	var rep usageReport
	if code != 200 || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("GET /api/usage: %d %s", code, b)
	}
	if rep.Total != 3 || rep.count("ev", "echo", "ok") != 2 || rep.count("", "", "denied") != 1 {
		t.Fatalf("acme's usage = %s", b)
	}
	for _, row := range rep.Rows {
		if row.Tenant != "acme" || row.ActorKind != "key" || row.Actor == "" {
			t.Errorf("row %+v", row)
		}
	}
	// beta's admin sees beta's usage (none), never acme's.
	if code, b := apiDo(t, http.MethodGet, base+"/api/usage", admin, ""); code != 200 || !strings.Contains(string(b), `"total":0`) {
		t.Errorf("beta's admin: %d %s", code, b)
	}
	if code, _ := apiDo(t, http.MethodGet, base+"/api/usage?tenant=acme", admin, ""); code != http.StatusNotFound {
		t.Errorf("beta's admin asking for acme: %d, want 404", code)
	}
	if code, _ := apiDo(t, http.MethodGet, base+"/api/usage", member, ""); code != http.StatusForbidden {
		t.Errorf("a member: %d, want 403", code)
	}
	code, b = apiDo(t, http.MethodGet, base+"/api/usage?tenant=acme&granularity=month&format=csv", testAdminKey, "")
	if code != 200 || !strings.HasPrefix(string(b), "period,tenant,tenant_id,") || !strings.Contains(string(b), ",ev,echo,ok,2") {
		t.Errorf("CSV: %d %s", code, b)
	}

	// One more call, then a clean shutdown: the last flush writes it.
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "last"}}); err != nil || res.IsError {
		t.Fatalf("call: %v %v", res, err)
	}
	_ = cs.Close()
	stopGateway(t, p)
	out := cli(t, env, "usage", "--config", cfgPath, "--tenant", "acme", "--json")
	rep = usageReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("usage --json: %v\n%s", err, out)
	}
	if rep.Total != 4 || rep.count("ev", "echo", "ok") != 3 {
		t.Errorf("after the shutdown: %s", out)
	}
	if out := cli(t, env, "usage", "--config", cfgPath, "--csv", "--granularity", "month"); !strings.Contains(out, ",acme,") || !strings.Contains(out, ",ev,echo,ok,3") {
		t.Errorf("usage --csv: %s", out)
	}
	if out := cli(t, env, "usage", "--config", cfgPath); !strings.Contains(out, "total: 4 calls") {
		t.Errorf("usage: %s", out)
	}
	if out, err := cliErr(env, "usage", "--config", cfgPath, "--granularity", "day"); err == nil || !strings.Contains(out, "hour or month") {
		t.Errorf("usage --granularity day: %v %s", err, out)
	}
}

// TestUsageSingleUser: with auth off, calls are metered as the bootstrap
// tenant's anonymous local user, written by the periodic flush.
func TestUsageSingleUser(t *testing.T) {
	dataHome := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + dataHome}
	cfgPath := writeConfig(t, "[auth]\nmode = \"off\"\n[metering]\nflush_interval = \"1s\"\n"+everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReady(t, "ev")
	cs := connect(t, p.URL+"/mcp")
	if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "x"}}); err != nil || res.IsError {
		t.Fatalf("call: %v %v", res, err)
	}
	var out string
	waitFor(t, 20*time.Second, "the call in the usage report", func() bool {
		out = cli(t, env, "usage", "--config", cfgPath, "--json")
		return strings.Contains(out, `"total": 1`)
	})
	var rep usageReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Rows) != 1 || rep.Rows[0].ActorKind != "anonymous" || rep.count("ev", "echo", "ok") != 1 {
		t.Errorf("single-user usage: %v %s", err, out)
	}
}
