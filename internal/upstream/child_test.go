package upstream

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// envServerVar makes this test binary a stdio MCP server (see TestMain)
// with one tool, "env", that answers with the process's environment.
const envServerVar = "UPSTREAM_TEST_ENV_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(envServerVar) == "" {
		os.Exit(m.Run())
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "env-echo", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{Name: "env", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			env := os.Environ()
			sort.Strings(env)
			b, _ := json.Marshal(env)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}, nil
		})
	_ = s.Run(context.Background(), &mcp.StdioTransport{})
	os.Exit(0)
}

// startUpstream parses one upstream's TOML, starts it and waits until it
// is ready.
func startUpstream(t *testing.T, toml string) *Upstream {
	t.Helper()
	cfg, err := config.Parse("t.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	u := New(cfg.Upstreams[0], nil)
	u.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		u.Stop(ctx)
	})
	deadline := time.Now().Add(20 * time.Second)
	for u.Status().State != StateReady {
		if time.Now().After(deadline) {
			t.Fatalf("upstream not ready: %+v", u.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return u
}

// TestStdioChildEnvironment starts a real child with secrets in the
// gateway's environment: the child sees the base variables, what
// inherit_env names and its env table, and none of the gateway's own.
func TestStdioChildEnvironment(t *testing.T) {
	t.Setenv("MCPEDGE_ADMIN_KEY", "mcpe_must_not_leak")
	t.Setenv("MCPEDGE_ADMIN_PASSWORD", "must-not-leak-either")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-listed")
	t.Setenv("PASS_ME", "inherited")
	t.Setenv("LC_TIME", "C")
	u := startUpstream(t, `
[[upstreams]]
name = "envecho"
command = "`+os.Args[0]+`"
inherit_env = ["PASS_ME"]
env = { `+envServerVar+` = "1", SET_HERE = "from-env-table" }
`)
	cs, err := u.Session(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "env", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("env tool: %+v %v", res, err)
	}
	var env []string
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &env); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k := range got {
		if strings.HasPrefix(k, "MCPEDGE_") {
			t.Errorf("the child sees the gateway's %s", k)
		}
	}
	if _, ok := got["AWS_SECRET_ACCESS_KEY"]; ok {
		t.Error("the child sees a variable nobody listed")
	}
	want := map[string]string{"PASS_ME": "inherited", "SET_HERE": "from-env-table", envServerVar: "1", "LC_TIME": "C", "PATH": os.Getenv("PATH")}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("child's %s = %q, want %q", k, got[k], v)
		}
	}
	t.Logf("child environment: %q", env)
}
