package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSingleUserModeAuditsToolCalls: with auth off, tool calls still pass
// the pipeline's audit stage and land in the hash-chained audit log, with
// the arguments hashed and the caller recorded as the anonymous local user;
// a call of a tool that does not exist is recorded too.
func TestSingleUserModeAuditsToolCalls(t *testing.T) {
	dataHome := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + dataHome}
	cfgPath := writeConfig(t, "[auth]\nmode = \"off\"\n"+everythingBlock(t, "ev"))
	p := startServe(t, env, "--config", cfgPath)
	p.waitReady(t, "ev")
	cs := connect(t, p.URL+"/mcp")
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__echo", Arguments: map[string]any{"message": "secret-words"}})
	if err != nil || res.IsError {
		t.Fatalf("call: %v %v", res, err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ev__nonesuch", Arguments: map[string]any{}}); err == nil {
		t.Fatal("a tool that does not exist answered")
	}
	var out string
	var call, unknown map[string]any
	waitFor(t, 10*time.Second, "tool calls in the audit log", func() bool {
		out = cli(t, env, "audit", "export", "--config", cfgPath)
		call, unknown = nil, nil
		for _, line := range strings.Split(out, "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil || e["action"] != "tool.call" {
				continue
			}
			switch e["target"] {
			case "ev__echo":
				call = e
			case "ev__nonesuch":
				unknown = e
			}
		}
		return call != nil && unknown != nil
	})
	if call["outcome"] != "ok" || call["actor_kind"] != "anonymous" {
		t.Errorf("the call's entry: %v", call)
	}
	raw, _ := json.Marshal(call["detail"]) // a JSON object, not base64
	if !strings.Contains(string(raw), "args_sha256") || strings.Contains(out, "secret-words") {
		t.Errorf("arguments must be recorded as a hash: %s", raw)
	}
	if unknown["outcome"] != "error" {
		t.Errorf("the unknown tool's entry: %v", unknown)
	}
	if out := cli(t, env, "audit", "verify", "--config", cfgPath); !strings.Contains(strings.ToLower(out), "ok") {
		t.Errorf("audit verify: %s", out)
	}
}
