package firstrun

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// durationKeys are log attributes that hold durations.
var durationKeys = []string{"retry_in", "grace", "took", "open_for", "elapsed", "after", "wait"}

// TestLogDurationsReadable: durations in the log are strings a person
// reads ("200ms", "10s"), not integer nanoseconds.
func TestLogDurationsReadable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	cfg := writeFile(t, t.TempDir(), "mcpedge.toml", `[server]
shutdown_grace = "10s"
[auth]
mode = "off"

[[upstreams]]
name = "refused"
url = "http://`+refused+`/mcp"
`)
	p := serve(t, nil, "--config", cfg)
	l := p.waitLog(t, 30*time.Second, "upstream connect failed", func(l map[string]any) bool { return l["msg"] == "upstream connect failed" })
	if l["retry_in"] != "200ms" {
		t.Errorf("retry_in = %#v, want \"200ms\"", l["retry_in"])
	}
	p.stop(t)
	l = p.waitLog(t, 10*time.Second, "shutting down", func(l map[string]any) bool { return l["msg"] == "shutting down" })
	if l["grace"] != "10s" {
		t.Errorf("grace = %#v, want \"10s\"", l["grace"])
	}
	for _, l := range p.logLines() {
		for _, k := range durationKeys {
			if v, ok := l[k]; ok {
				if _, isString := v.(string); !isString {
					t.Errorf("%s: %s = %#v, not a duration string", l["msg"], k, v)
				}
			}
		}
	}
}

// TestReloadQuietAboutSessions: a reload that changes an upstream with
// client sessions open (sessions that do not listen for notifications, as
// most clients that went away) logs the reload, not a line per session
// per change notification, and nothing per session at info.
func TestReloadQuietAboutSessions(t *testing.T) {
	cmd, args := everything(t)
	block := func(extra string) string {
		return `[auth]
mode = "off"

[[upstreams]]
name = "ev"
command = ` + q(cmd) + `
args = ` + qlist(args) + `
` + extra
	}
	dir := t.TempDir()
	cfg := writeFile(t, dir, "mcpedge.toml", block(""))
	p := serve(t, nil, "--config", cfg)
	p.waitUpstream(t, "ev", 60*time.Second, "ready", func(u upstreamStatus) bool { return u.State == "ready" })
	for range 3 {
		sid := post(t, p.URL+"/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"gone","version":"1"}}}`)
		post(t, p.URL+"/mcp", sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		post(t, p.URL+"/mcp", sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	}
	writeFile(t, dir, "mcpedge.toml", block("env = { RELOADED = \"1\" }\n"))
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, 60*time.Second, "the changed upstream reconnected", func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["msg"]), "upstream reconnected with its new configuration")
	})
	// The change notifications go out once the new catalog is registered;
	// they are sent at once, so a second reload after the first settles
	// would be the only later event. Give them the moment they take.
	time.Sleep(2 * time.Second)
	for _, l := range p.logLines() {
		msg := fmt.Sprint(l["msg"])
		if l["level"] == "WARN" || l["level"] == "ERROR" {
			t.Errorf("%s at %s", msg, l["level"])
		}
		if l["level"] == "INFO" && (strings.Contains(msg, "session connected") || msg == "session initialized" || msg == "server connecting") {
			t.Errorf("a line per session at info: %s", msg)
		}
	}
}

// post sends one JSON-RPC message to /mcp and returns the session id the
// answer carries (or sid).
func post(t *testing.T, url, sid, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s: %s %s", body, resp.Status, b)
	}
	if s := resp.Header.Get("Mcp-Session-Id"); s != "" {
		return s
	}
	return sid
}
