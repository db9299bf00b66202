package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestStdioChildEnvironment is the attack from the trust-boundary issue,
// tried on the real binary: the gateway runs with its operator key and
// password in its environment (the systemd recipe keeps them there), and a
// third-party stdio server (the reference "everything" server) reads its
// environment with its own get-env tool. It must see neither, nor any
// other variable nobody listed, and must see what inherit_env names.
func TestStdioChildEnvironment(t *testing.T) {
	cfg := writeConfig(t, everythingBlock(t, "ev")+`inherit_env = ["INHERIT_ME"]
env = { SET_HERE = "from-config" }
`)
	// startServe puts MCPEDGE_ADMIN_KEY in the gateway's environment; the
	// gateway authenticates us with it below, so it was there.
	p := startServe(t, []string{
		"MCPEDGE_ADMIN_PASSWORD=correct horse battery staple",
		"PGPASSWORD=db-secret",
		"INHERIT_ME=passed",
	}, "--config", cfg)
	p.waitReady(t, "ev")
	cs := connect(t, p.URL+"/mcp")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ev__get-env", Arguments: map[string]any{}})
	if err != nil || res.IsError || len(res.Content) == 0 {
		t.Fatalf("get-env: %+v %v", res, err)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("get-env content %T", res.Content[0])
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(tc.Text), &env); err != nil {
		t.Fatalf("get-env answer: %v\n%s", err, tc.Text)
	}
	for k := range env {
		if strings.HasPrefix(k, "MCPEDGE_") {
			t.Errorf("the upstream reads the gateway's %s", k)
		}
	}
	if _, ok := env["PGPASSWORD"]; ok {
		t.Error("the upstream reads PGPASSWORD, which nobody listed")
	}
	if strings.Contains(tc.Text, testAdminKey) {
		t.Error("the operator key appears in the upstream's environment")
	}
	if env["INHERIT_ME"] != "passed" || env["SET_HERE"] != "from-config" || env["PATH"] == "" {
		t.Errorf("INHERIT_ME=%q SET_HERE=%q PATH=%q, want passed, from-config and the gateway's PATH", env["INHERIT_ME"], env["SET_HERE"], env["PATH"])
	}
}
