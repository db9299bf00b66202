package nodeclient

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests prove the harness against server-everything directly, with no
// gateway in between: whatever a gateway test later observes differently is
// the gateway's doing.

func names(t *testing.T, res Result, key string) []string {
	t.Helper()
	sec, ok := res[key].(map[string]any)
	if !ok {
		t.Fatalf("result has no %q section: %v", key, res)
	}
	raw, _ := sec["names"].([]any)
	out := make([]string, 0, len(raw))
	for _, v := range raw {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func firstText(t *testing.T, v any) string {
	t.Helper()
	m, _ := v.(map[string]any)
	content, _ := m["content"].([]any)
	if len(content) == 0 {
		t.Fatalf("no content in %v", v)
	}
	c0, _ := content[0].(map[string]any)
	s, _ := c0["text"].(string)
	return s
}

func allText(v any) string {
	m, _ := v.(map[string]any)
	content, _ := m["content"].([]any)
	var b strings.Builder
	for _, c := range content {
		if cm, ok := c.(map[string]any); ok {
			if s, ok := cm["text"].(string); ok {
				b.WriteString(s)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

func TestRepoRootAndStdioCommand(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(root); err != nil {
		t.Fatal(err)
	}
	cmd, args := EverythingStdioCommand(root)
	if !strings.Contains(filepath.Base(cmd), "node") {
		t.Fatalf("command = %q, want node", cmd)
	}
	if len(args) != 2 || args[1] != "stdio" {
		t.Fatalf("args = %q", args)
	}
	if _, err := os.Stat(args[0]); err != nil {
		t.Fatalf("entry point: %v", err)
	}
}

func TestEverythingHTTPDirect(t *testing.T) {
	t.Parallel()
	url := StartEverythingHTTP(t)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/mcp") {
		t.Fatalf("url = %q", url)
	}

	t.Run("initialize", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "initialize", nil)
		info, _ := res["serverInfo"].(map[string]any)
		if info["name"] != "mcp-servers/everything" {
			t.Errorf("serverInfo = %v", info)
		}
		if res["protocolVersion"] != "2025-11-25" {
			t.Errorf("protocolVersion = %v", res["protocolVersion"])
		}
		if s, _ := res["instructions"].(string); !strings.Contains(s, "Everything Server") {
			t.Errorf("instructions = %.80q", s)
		}
	})

	t.Run("initialize-older-version", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "initialize", nil, WithProtocolVersion("2025-03-26"))
		if res["protocolVersion"] != "2025-03-26" {
			t.Errorf("protocolVersion = %v", res["protocolVersion"])
		}
	})

	t.Run("unsupported-version-reported", func(t *testing.T) {
		t.Parallel()
		res, err := Try(t, url, "initialize", nil, WithProtocolVersion("2026-07-28"))
		if err == nil || res["unsupported"] != true {
			t.Fatalf("want unsupported, got %v (err %v)", res, err)
		}
	})

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "list", map[string]any{"brief": true})
		tools := names(t, res, "tools")
		for _, want := range []string{"echo", "get-sum", "trigger-long-running-operation",
			"trigger-sampling-request", "trigger-elicitation-request", "get-roots-list"} {
			if !slices.Contains(tools, want) {
				t.Errorf("tool %q missing from %v", want, tools)
			}
		}
		if got := names(t, res, "prompts"); len(got) != 4 {
			t.Errorf("prompts = %v", got)
		}
		if got := names(t, res, "resources"); len(got) != 7 {
			t.Errorf("resources = %v", got)
		}
		if got := names(t, res, "resourceTemplates"); !slices.Contains(got, "demo://resource/dynamic/text/{resourceId}") {
			t.Errorf("templates = %v", got)
		}
		for _, k := range []string{"tools", "prompts", "resources", "resourceTemplates"} {
			if p := res[k].(map[string]any)["pages"]; p != float64(1) {
				t.Errorf("%s pages = %v", k, p)
			}
		}
	})

	t.Run("call-echo", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}},
			WithHeader("X-Mcpedge-Test", "1"))
		if got := firstText(t, res["result"]); got != "Echo: hi" {
			t.Errorf("echo = %q", got)
		}
	})

	t.Run("sampling", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "sampling", map[string]any{"arguments": map[string]any{"prompt": "ping?", "maxTokens": 20}})
		req, _ := res["request"].(map[string]any)
		if req["maxTokens"] != float64(20) || req["systemPrompt"] == nil {
			t.Errorf("sampling request = %v", req)
		}
		if got := firstText(t, res["result"]); !strings.Contains(got, "sampled-by-node") {
			t.Errorf("tool result = %q", got)
		}
	})

	t.Run("elicitation", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "elicitation", map[string]any{"content": map[string]any{"name": "Ada", "integer": 7}})
		req, _ := res["request"].(map[string]any)
		schema, _ := req["requestedSchema"].(map[string]any)
		props, _ := schema["properties"].(map[string]any)
		integer, _ := props["integer"].(map[string]any)
		if integer["default"] != float64(42) {
			t.Errorf("requestedSchema.integer = %v", integer)
		}
		friend, _ := props["untitledSingleSelectEnum"].(map[string]any)
		if enum, _ := friend["enum"].([]any); len(enum) != 6 {
			t.Errorf("enum = %v", friend)
		}
		text := allText(res["result"])
		if !strings.Contains(text, "Name: Ada") || !strings.Contains(text, "Favorite Integer: 7") {
			t.Errorf("tool result = %q", text)
		}
	})

	t.Run("roots", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "roots", nil)
		if got := firstText(t, res["result"]); !strings.Contains(got, "file:///tmp/mcpedge-roots") {
			t.Errorf("roots result = %q", got)
		}
	})

	t.Run("progress", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "progress", map[string]any{"arguments": map[string]any{"duration": 1, "steps": 4}})
		if res["count"] != float64(4) {
			t.Errorf("progress count = %v: %v", res["count"], res["progress"])
		}
		prog, _ := res["progress"].([]any)
		for i, p := range prog {
			pm := p.(map[string]any)
			if pm["progress"] != float64(i+1) || pm["total"] != float64(4) {
				t.Errorf("progress[%d] = %v", i, pm)
			}
		}
		if got := firstText(t, res["result"]); !strings.Contains(got, "completed") {
			t.Errorf("result = %q", got)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		res := Run(t, url, "cancel", map[string]any{"arguments": map[string]any{"duration": 60, "steps": 120}})
		if res["rejected"] != true || res["cancelNotificationSent"] != true {
			t.Errorf("cancel = %v", res)
		}
		if e, _ := res["error"].(map[string]any); !strings.Contains(fmt.Sprint(e["message"]), "cancelled-by-node") {
			t.Errorf("error = %v", res["error"])
		}
		if got := firstText(t, res["followup"]); got != "Echo: after-cancel" {
			t.Errorf("followup = %q", got)
		}
		if d := time.Since(start); d > 40*time.Second {
			t.Errorf("cancel took %s; the 60s call was not abandoned", d)
		}
	})

	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "complete", map[string]any{
			"ref":      map[string]any{"type": "ref/prompt", "name": "completable-prompt"},
			"argument": map[string]any{"name": "department", "value": "S"},
		})
		if got := fmt.Sprint(res["values"]); got != "[Sales Support]" {
			t.Errorf("values = %s", got)
		}
	})

	t.Run("prompt-read-ping", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "prompt", map[string]any{"name": "args-prompt", "arguments": map[string]any{"city": "Paris"}})
		if !strings.Contains(fmt.Sprint(res["result"]), "What's weather in Paris?") {
			t.Errorf("prompt = %v", res["result"])
		}
		res = Run(t, url, "read", map[string]any{"uri": "demo://resource/dynamic/text/3"})
		if !strings.Contains(fmt.Sprint(res["result"]), "Resource 3:") {
			t.Errorf("read = %v", res["result"])
		}
		Run(t, url, "ping", nil)
	})
}

// The slow, timer-driven scenarios (server-everything emits updates and log
// messages every 5 s) run only when asked for, to keep `go test ./...` quick.
func TestEverythingHTTPTimers(t *testing.T) {
	if testing.Short() {
		t.Skip("timer-driven scenarios take ~6s each")
	}
	t.Parallel()
	url := StartEverythingHTTP(t)
	t.Run("subscribe", func(t *testing.T) {
		t.Parallel()
		uri := "demo://resource/static/document/architecture.md"
		res := Run(t, url, "subscribe", map[string]any{"uri": uri, "timeoutMs": 8000})
		if res["count"].(float64) < 1 {
			t.Errorf("no updates: %v", res)
		}
	})
	t.Run("logging", func(t *testing.T) {
		t.Parallel()
		res := Run(t, url, "logging", map[string]any{"level": "debug", "durationMs": 1500})
		if res["count"].(float64) < 1 {
			t.Errorf("no log messages: %v", res)
		}
	})
}

func TestEverythingSSEDirect(t *testing.T) {
	t.Parallel()
	url := StartEverythingSSE(t)
	res := Run(t, url, "call", map[string]any{"name": "get-sum", "arguments": map[string]any{"a": 2, "b": 3}}, WithSSE())
	if got := firstText(t, res["result"]); !strings.Contains(got, "5") {
		t.Errorf("get-sum = %q", got)
	}
	res = Run(t, url, "progress", map[string]any{"arguments": map[string]any{"duration": 0.5, "steps": 2}}, WithSSE())
	if res["count"] != float64(2) {
		t.Errorf("progress over sse = %v", res["progress"])
	}
}

func TestTimeoutIsReported(t *testing.T) {
	t.Parallel()
	url := StartEverythingHTTP(t)
	start := time.Now()
	res, err := Try(t, url, "progress", map[string]any{"arguments": map[string]any{"duration": 30, "steps": 2}},
		WithTimeout(2*time.Second))
	if err == nil {
		t.Fatalf("want a timeout, got %v", res)
	}
	if !strings.Contains(fmt.Sprint(res["error"]), "timed out") && res["timeout"] != true {
		t.Errorf("error = %v", res["error"])
	}
	// Generous: node itself can take seconds to start on a loaded machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a 2s scenario timeout took %s", d)
	}
}
