package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestGuardrailsAgainstHostileUpstreams runs the real binary with the
// guardrails on in front of our hostile server (hostile_test.go), once
// over stdio (hs, descriptions flagged) and once over Streamable HTTP (hh,
// descriptions quarantined), and observes every defence with the
// official TypeScript SDK client and in the audit log:
//   - the poisoned description is flagged (hs) or withheld (hh) until an
//     operator approves it with mcpedge guard approve;
//   - hidden Unicode in a description is removed and flagged;
//   - secrets, terminal escapes and tag characters in a tool result, a
//     resource and a sampling request are gone, and the tool.call audit
//     entry counts what was redacted;
//   - a tool changed after the first listing (a rug pull) keeps being
//     served as pinned, and the change is audited as pin.change.
func TestGuardrailsAgainstHostileUpstreams(t *testing.T) {
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return hostileServer("http") }, nil))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := secEnv(t)
	cfg := writeConfig(t, `[guard]
results = "redact"
descriptions = "quarantine"

[[upstreams]]
name = "hs"
transport = "stdio"
command = `+quoteTOML(self)+`
env = { `+hostileEnv+` = "stdio" }
[upstreams.guard]
descriptions = "flag"

[[upstreams]]
name = "hh"
url = `+quoteTOML(srv.URL)+`
`)
	p := startServe(t, env, "--config", cfg)
	p.waitReadyAuth(t, testAdminKey, "hs", "hh")
	auth := nodeclient.WithHeader("Authorization", "Bearer "+testAdminKey)
	url := p.URL + "/mcp"

	tools := func() map[string]map[string]any {
		res := nodeclient.Run(t, url, "list", nil, auth)
		out := map[string]map[string]any{}
		items, _ := res["tools"].(map[string]any)["items"].([]any)
		for _, it := range items {
			m := it.(map[string]any)
			out[m["name"].(string)] = m
		}
		return out
	}
	listed := tools()
	// Descriptions: flagged over stdio, quarantined over HTTP.
	add := listed["hs__add"]
	if add == nil || !strings.HasPrefix(add["description"].(string), "[mcpedge guard: this description was flagged as possibly poisoned (directive-tag, sensitive-file, parameter-smuggling, conceal)") {
		t.Errorf("hs__add = %v", add)
	}
	if meta, _ := add["_meta"].(map[string]any); meta == nil || meta["io.mcpedge/guard"] == nil {
		t.Errorf("hs__add carries no guard _meta: %v", add)
	}
	if listed["hh__add"] != nil {
		t.Errorf("the quarantined hh__add is listed: %v", listed["hh__add"])
	}
	echo, _ := listed["hs__echo"]["description"].(string)
	if !strings.Contains(echo, "hidden-unicode") || !strings.HasSuffix(echo, "Echoes.") {
		t.Errorf("hs__echo = %q (hidden Unicode removed and flagged)", echo)
	}
	if listed["hh__report"] == nil || listed["hs__fetch"] == nil {
		t.Fatalf("clean tools missing: %v", keys(listed))
	}

	// Results, resources and sampling requests.
	for _, up := range []string{"hs", "hh"} {
		res := nodeclient.Run(t, url, "call", map[string]any{"name": up + "__report", "arguments": map[string]any{}}, auth)
		raw, _ := json.Marshal(res["result"])
		for _, bad := range []string{hostileAWS, "BEGIN RSA", `\u001b`, "\U000E0063", "title"} {
			if strings.Contains(string(raw), bad) {
				t.Errorf("%s__report result still carries %q: %s", up, bad, raw)
			}
		}
		if !strings.Contains(string(raw), "key [REDACTED:aws_access_key]\\n[REDACTED:private_key]\\nred done") {
			t.Errorf("%s__report result: %s", up, raw)
		}
		rd := nodeclient.Run(t, url, "read", map[string]any{"uri": "notes://" + map[string]string{"hs": "stdio", "hh": "http"}[up] + "/secret"}, auth)
		raw, _ = json.Marshal(rd["result"])
		if strings.Contains(string(raw), hostileAWS) || strings.Contains(string(raw), "wJalrXUtnFEMI") || strings.Contains(string(raw), `\u001b`) ||
			!strings.Contains(string(raw), "[REDACTED:secret]") {
			t.Errorf("%s resources/read: %s", up, raw)
		}
		sm := nodeclient.Run(t, url, "sampling", map[string]any{"name": up + "__ask", "arguments": map[string]any{}}, auth)
		raw, _ = json.Marshal(sm["request"])
		if strings.Contains(string(raw), hostileAWS) || strings.Contains(string(raw), "pwned") || strings.Contains(string(raw), "\U000E0061") ||
			!strings.Contains(string(raw), "summarise with key [REDACTED:aws_access_key]") {
			t.Errorf("%s sampling request reached the client as %s", up, raw)
		}
	}

	// The rug pull: fetch changes after it was listed; it keeps being
	// served as pinned.
	nodeclient.Run(t, url, "call", map[string]any{"name": "hs__mutate", "arguments": map[string]any{}}, auth)
	waitFor(t, 20*time.Second, "the rug pull to be seen", func() bool {
		return strings.Contains(cli(t, env, "pins", "ls", "--pending", "--config", cfg), "fetch")
	})
	if d, _ := tools()["hs__fetch"]["description"].(string); d != "Fetches a URL." {
		t.Errorf("after the rug pull hs__fetch says %q, want the pinned description", d)
	}

	// The quarantine, released by an operator.
	out := cli(t, env, "guard", "ls", "--pending", "--config", cfg)
	if !strings.Contains(out, "hh") || !strings.Contains(out, "add") || !strings.Contains(out, "directive-tag") {
		t.Fatalf("guard ls --pending:\n%s", out)
	}
	cli(t, env, "guard", "approve", "hh", "tool", "add", "--config", cfg)
	waitFor(t, 30*time.Second, "the approved tool to be listed", func() bool { return tools()["hh__add"] != nil })
	if m, _ := tools()["hh__add"]["_meta"].(map[string]any)["io.mcpedge/guard"].(map[string]any); m == nil || m["verdict"] != "approved" {
		t.Errorf("approved hh__add _meta: %v", tools()["hh__add"]["_meta"])
	}

	// The audit log.
	audit := cli(t, env, "audit", "export", "--config", cfg)
	var actions []string
	redacted := false
	for _, line := range strings.Split(strings.TrimSpace(audit), "\n") {
		var e struct {
			Action, Target string
			Detail         []byte // JSON
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		actions = append(actions, e.Action+" "+e.Target)
		var d map[string]any
		_ = json.Unmarshal(e.Detail, &d)
		if e.Action == "tool.call" && strings.HasSuffix(e.Target, "__report") {
			if r, _ := d["redacted"].(map[string]any); r["aws_access_key"] != nil && r["private_key"] != nil && r["escape"] != nil && r["tag"] != nil {
				redacted = true
			}
		}
	}
	all := strings.Join(actions, "\n")
	for _, want := range []string{"guard.quarantine guard:hh/tool/add", "guard.approve guard:hh/tool/add", "pin.change pin:hs/tool/fetch"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit log has no %q:\n%s", want, all)
		}
	}
	if !redacted {
		t.Errorf("no tool.call audit entry counts what was redacted:\n%s", audit)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func quoteTOML(s string) string { b, _ := json.Marshal(s); return string(b) }
