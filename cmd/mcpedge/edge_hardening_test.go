package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Request-path hardening (docs/security.md) on the real binary: slow
// bodies and headers, ambiguous framing, JSON-RPC ids and case-variant
// keys, Host and Origin on every endpoint, repeated headers, and a missing
// session id.

// edgeTimeouts is the [server] block of these tests: short deadlines, so
// that what they cut off is seen quickly.
const edgeTimeouts = "[server]\nbody_read_timeout = \"2s\"\nread_header_timeout = \"2s\"\nallowed_hosts = [\"mcp.proxy.test\"]\n"

func startEdgeGateway(t *testing.T) *gatewayProc {
	t.Helper()
	return startServe(t, nil, "--config", writeConfig(t, edgeTimeouts))
}

func hostOf(t *testing.T, p *gatewayProc) string { return strings.TrimPrefix(p.URL, "http://") }

// rawResult is what a raw connection saw: the bytes the gateway sent,
// when the first of them came, and whether it closed the connection (EOF
// or reset) before the test gave up.
type rawResult struct {
	resp           string
	closed         bool
	first, elapsed time.Duration
}

// rawSend writes payload on a new connection and reads until the gateway
// closes it or wait passes.
func rawSend(t *testing.T, addr, payload string, wait time.Duration) rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// The gateway may close before it has read everything (an oversized
	// header block); what it answered is still read.
	_, _ = io.WriteString(c, payload)
	return readUntilClosed(c, start, wait)
}

func readUntilClosed(c net.Conn, start time.Time, wait time.Duration) rawResult {
	_ = c.SetReadDeadline(start.Add(wait))
	var res rawResult
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 && sb.Len() == 0 {
			res.first = time.Since(start)
		}
		sb.Write(buf[:n])
		if err != nil {
			var ne net.Error
			res.closed = !(errors.As(err, &ne) && ne.Timeout())
			break
		}
	}
	res.resp, res.elapsed = sb.String(), time.Since(start)
	return res
}

// answers counts the HTTP responses in resp.
func answers(resp string) int { return strings.Count("\n"+resp, "\nHTTP/1.") }

func statusLine(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

// TestEdgeSlowBodyCutOff: a body that never arrives, or arrives a byte at a
// time, holds a connection no longer than body_read_timeout, with or
// without a credential. Without one the refusal (401) comes at once and
// the connection is closed: net/http would otherwise wait for the unread
// body before sending the answer, on a connection with no deadline.
func TestEdgeSlowBodyCutOff(t *testing.T) {
	p := startEdgeGateway(t)
	addr := hostOf(t, p)
	head := func(auth bool) string {
		h := "POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 200\r\n"
		if auth {
			h += "Authorization: Bearer " + testAdminKey + "\r\n"
		}
		return h + "\r\n"
	}

	t.Run("never arrives, no credential", func(t *testing.T) {
		r := rawSend(t, addr, head(false), 10*time.Second)
		if !strings.Contains(statusLine(r.resp), "401") || !r.closed || r.elapsed > 1500*time.Millisecond {
			t.Fatalf("got %q after %s, closed=%v after %s; want 401 and the connection closed at once, before the 2s body deadline", statusLine(r.resp), r.first, r.closed, r.elapsed)
		}
	})
	t.Run("never arrives, with credential", func(t *testing.T) {
		r := rawSend(t, addr, head(true), 10*time.Second)
		if !strings.Contains(statusLine(r.resp), "400") || !strings.Contains(r.resp, "reading request body") || !r.closed {
			t.Fatalf("got %q closed=%v after %s; want 400 (body read timeout) and the connection closed", r.resp, r.closed, r.elapsed)
		}
		if r.elapsed < 1500*time.Millisecond || r.elapsed > 6*time.Second {
			t.Fatalf("cut off after %s, want about 2s (body_read_timeout)", r.elapsed)
		}
	})
	for _, auth := range []bool{false, true} {
		t.Run(fmt.Sprintf("a byte at a time, credential=%v", auth), func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_, _ = io.WriteString(c, head(auth))
			body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"slow","version":"1"}}}` + strings.Repeat(" ", 200)
			// One byte every 100ms would take 20s for the whole body; stop
			// writing as soon as the gateway gives up on us.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < 200; i++ {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					break
				}
				<-tick.C
				if time.Since(start) > 8*time.Second {
					break
				}
				// A closed connection shows as a failed write soon after;
				// poll for an answer without waiting.
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				var b [1]byte
				if n, _ := c.Read(b[:]); n > 0 {
					break
				}
			}
			r := readUntilClosed(c, start, 10*time.Second)
			if !r.closed || r.elapsed > 6*time.Second {
				t.Fatalf("trickled body: closed=%v after %s; want the connection closed by about 2s", r.closed, r.elapsed)
			}
		})
	}
}

// TestEdgeManySlowConnections: 300 connections that send their headers or
// body slowly, with and without credentials, do not keep a normal client
// out, and each of them is cut off.
func TestEdgeManySlowConnections(t *testing.T) {
	p := startEdgeGateway(t)
	addr := hostOf(t, p)
	const n = 300
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // headers that never end
			_, _ = io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: "+addr+"\r\n")
		case 1: // a body that never arrives, authenticated
			_, _ = io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: Bearer "+testAdminKey+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		case 2: // a body that never arrives, no credential, on /api
			_, _ = io.WriteString(c, "POST /api/tenants HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
		}
	}
	// While they are open, a normal client is served.
	cs := connect(t, p.URL+"/mcp")
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "mcpedge__status", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("a normal client among %d slow connections: %v %+v", n, err, res)
	}
	// Every slow connection is closed by the gateway within its deadline.
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			r := readUntilClosed(c, start, 15*time.Second)
			if !r.closed {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	if open > 0 {
		t.Fatalf("%d of %d slow connections still open after 15s; read_header_timeout and body_read_timeout are 2s", open, n)
	}
}

// TestEdgeAmbiguousFraming: requests whose length the gateway and a proxy
// in front could read differently are refused and their connection is
// closed, so that nothing after them on the connection is read as a
// request. The ones net/http refuses itself are checked too, as the
// gateway relies on it for them.
func TestEdgeAmbiguousFraming(t *testing.T) {
	p := startEdgeGateway(t)
	addr := hostOf(t, p)
	auth := "Authorization: Bearer " + testAdminKey + "\r\n"
	// A request smuggled behind the first one: it must never be answered.
	smuggled := "GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	cases := []struct {
		name, req, status, msg string
	}{
		{"Content-Length and Transfer-Encoding",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			"400", "both Content-Length and Transfer-Encoding"},
		{"Transfer-Encoding before Content-Length",
			"POST /api/tenants HTTP/1.1\r\nHost: " + addr + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled,
			"400", "both Content-Length and Transfer-Encoding"},
		{"Transfer-Encoding in HTTP/1.0",
			"POST /mcp HTTP/1.0\r\nHost: " + addr + "\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			"400", "HTTP/1.0"},
		{"obsolete line folding",
			"GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Folded: a\r\n b\r\n\r\n" + smuggled,
			"400", ""},
		{"client-sent marker header",
			"GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Mcpedge-Framing-Error: no\r\n\r\n" + smuggled,
			"400", "reserved header"},
		// net/http refuses these itself, without saying why (a bare 400,
		// or 501); the gateway says what was wrong.
		{"differing Content-Length headers",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n{}{}" + smuggled,
			"400", "Content-Length headers with different values"},
		{"Transfer-Encoding gzip",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled,
			"400", `Transfer-Encoding \"gzip\" is not supported`},
		{"Transfer-Encoding gzip, chunked",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled,
			"400", "only chunked"},
		{"two Transfer-Encoding headers",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
			"400", "Transfer-Encoding occurs 2 times"},
		{"header block beyond MaxHeaderBytes",
			"GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n" + smuggled,
			"431", ""},
		{"Content-Length with a sign",
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\nContent-Length: +4\r\n\r\n{}{}" + smuggled,
			"400", "not a decimal number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rawSend(t, addr, c.req, 10*time.Second)
			if !strings.Contains(statusLine(r.resp), c.status) || !strings.Contains(r.resp, c.msg) {
				t.Errorf("answer %q, want %s mentioning %q", r.resp, c.status, c.msg)
			}
			if !r.closed {
				t.Errorf("connection left open after %q", statusLine(r.resp))
			}
			if n := answers(r.resp); n != 1 {
				t.Errorf("%d answers on the connection, want 1 (the request after it was read): %q", n, r.resp)
			}
		})
	}

	// An oversized header block after a first request on the connection
	// (net/http may have read ahead of its limit) is still refused.
	t.Run("header block beyond MaxHeaderBytes on a reused connection", func(t *testing.T) {
		r := rawSend(t, addr, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"+
			"GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: Bearer "+strings.Repeat("A", 100_000)+"\r\n\r\n"+smuggled, 10*time.Second)
		if answers(r.resp) != 2 || !strings.Contains(r.resp, "HTTP/1.1 431") || !r.closed {
			t.Errorf("got %q (closed=%v), want 200 then 431 and the connection closed", r.resp, r.closed)
		}
	})

	// Control: well-framed requests, chunked or not, keep the connection
	// and the next request on it is answered.
	t.Run("well-framed requests share a connection", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`
		req := "POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x;ext=1\r\n%s\r\n", 10, body[:10]) + fmt.Sprintf("%x\r\n%s\r\n", len(body)-10, body[10:]) + "0\r\nX-Trailer: t\r\n\r\n" +
			"POST /mcp HTTP/1.1\r\nHost: " + addr + "\r\n" + auth + "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body +
			"GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n"
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, req)
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i, want := range []int{200, 200, 200} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("answer %d: %v", i+1, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("answer %d: %d %s", i+1, resp.StatusCode, b)
			}
		}
	})
}

// edgePost sends a JSON-RPC body to /mcp with the admin key.
func edgePost(t *testing.T, url, body string, hdr map[string][]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

func rpcError(m map[string]any) (float64, string) {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(float64)
	msg, _ := e["message"].(string)
	return code, msg
}

// TestEdgeJSONRPCIdsAndKeyCase: ids a float64 decoder would round and keys
// that a case-insensitive decoder would read as protocol members are
// refused with -32600 before anything reads them.
func TestEdgeJSONRPCIdsAndKeyCase(t *testing.T) {
	p := startEdgeGateway(t)
	init := func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"mcpedge__status","arguments":{}%s}%s}`
	cases := []struct{ name, body, msg string }{
		{"fractional id", init("1.5"), "not an integer"},
		{"exponent id", init("1e400"), "not an integer"},
		{"id beyond 2^53", init("9007199254740993"), "too large"},
		{"boolean id", init("true"), "boolean"},
		{"object id", init("{}"), "object"},
		{"array id", init("[]"), "array"},
		{"null id", init("null"), "null"},
		{"Method", fmt.Sprintf(call, "", `,"Method":"ping"`), `"Method"`},
		{"ID", fmt.Sprintf(call, "", `,"ID":2`), `"ID"`},
		{"Jsonrpc", fmt.Sprintf(call, "", `,"Jsonrpc":"1.0"`), `"Jsonrpc"`},
		{"PARAMS", fmt.Sprintf(call, "", `,"PARAMS":{}`), `"PARAMS"`},
		{"Name in tools/call", fmt.Sprintf(call, `,"Name":"lattice__lattice_delete"`, ""), `"Name"`},
		{"Arguments in tools/call", fmt.Sprintf(call, `,"Arguments":{"x":1}`, ""), `"Arguments"`},
		{"_META in tools/call", fmt.Sprintf(call, `,"_META":{}`, ""), `"_META"`},
		{"URI in resources/read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a:b","URI":"file:///etc/passwd"}}`, `"URI"`},
		{"NAME in prompts/get", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"a","NAME":"b"}}`, `"NAME"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, m := edgePost(t, p.URL+"/mcp", c.body, nil)
			code, msg := rpcError(m)
			if status != http.StatusBadRequest || code != -32600 || !strings.Contains(msg, c.msg) {
				t.Errorf("status %d, %v; want 400 with code -32600 mentioning %q", status, m, c.msg)
			}
		})
	}
	// Control: string and large-but-exact integer ids open sessions.
	for _, id := range []string{`"abc"`, "9007199254740992", "-3"} {
		if status, m := edgePost(t, p.URL+"/mcp", init(id), nil); status != http.StatusOK {
			t.Errorf("initialize with id %s: %d %v", id, status, m)
		}
	}
}

// TestEdgeHostAndOriginEverywhere: Host (the gateway listens on loopback)
// and Origin are checked on every endpoint, not only /mcp, and a repeated
// Origin is refused.
func TestEdgeHostAndOriginEverywhere(t *testing.T) {
	p := startEdgeGateway(t)
	paths := []struct{ method, path string }{
		{http.MethodPost, "/mcp"}, {http.MethodGet, "/api/tenants"}, {http.MethodGet, "/metrics"},
		{http.MethodGet, "/readyz"}, {http.MethodGet, "/healthz"},
		{http.MethodGet, "/.well-known/oauth-protected-resource"}, {http.MethodGet, "/.well-known/oauth-protected-resource/mcp"},
	}
	do := func(method, path string, set func(*http.Request), auth bool) (int, string) {
		req, _ := http.NewRequest(method, p.URL+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+testAdminKey)
		}
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, ep := range paths {
		for _, auth := range []bool{false, true} {
			name := fmt.Sprintf("%s %s credential=%v", ep.method, ep.path, auth)
			t.Run(name, func(t *testing.T) {
				if code, b := do(ep.method, ep.path, func(r *http.Request) { r.Host = "rebound.attacker.example:80" }, auth); code != http.StatusForbidden || !strings.Contains(b, "rebound.attacker.example") {
					t.Errorf("foreign Host: %d %s, want 403 naming the host", code, b)
				}
				if code, b := do(ep.method, ep.path, func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, auth); code != http.StatusForbidden || !strings.Contains(b, "origin") {
					t.Errorf("foreign Origin: %d %s, want 403", code, b)
				}
				if code, b := do(ep.method, ep.path, func(r *http.Request) {
					r.Header["Origin"] = []string{"http://localhost", "https://evil.example"}
				}, auth); code != http.StatusBadRequest || !strings.Contains(b, "Origin header occurs 2 times") {
					t.Errorf("repeated Origin: %d %s, want 400", code, b)
				}
			})
		}
	}
	// Control: loopback Host names and origins are served, and the names
	// of server.allowed_hosts.
	for _, h := range []string{"localhost", hostOf(t, p), "[::1]:9", "app.localhost", "mcp.proxy.test:443", "MCP.proxy.test"} {
		if code, b := do(http.MethodGet, "/healthz", func(r *http.Request) {
			r.Host = h
			r.Header.Set("Origin", "http://localhost:3000")
		}, false); code != http.StatusOK {
			t.Errorf("Host %q: %d %s", h, code, b)
		}
	}
}

// TestEdgeRepeatedHeaders: a repeated Authorization, Mcp-Session-Id or
// MCP-Protocol-Version is refused: two components could each read another
// copy.
func TestEdgeRepeatedHeaders(t *testing.T) {
	p := startEdgeGateway(t)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	for _, h := range []string{"Authorization", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name"} {
		t.Run(h, func(t *testing.T) {
			vals := map[string][]string{
				"Authorization":        {"Bearer " + testAdminKey, "Bearer mcpe_someoneelse"},
				"Mcp-Session-Id":       {"a", "b"},
				"Mcp-Protocol-Version": {"2025-11-25", "2026-07-28"},
				"Mcp-Method":           {"initialize", "tools/call"},
				"Mcp-Name":             {"a", "b"},
			}
			status, m := edgePost(t, p.URL+"/mcp", init, map[string][]string{h: vals[h]})
			code, msg := rpcError(m)
			if status != http.StatusBadRequest || code != -32600 || !strings.Contains(msg, "the "+h+" header occurs 2 times") {
				t.Errorf("status %d, %v; want 400 saying %s occurs twice", status, m, h)
			}
		})
	}
	// Also on REST.
	req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/tenants", nil)
	req.Header["Authorization"] = []string{"Bearer " + testAdminKey, "Bearer " + testAdminKey}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Authorization header occurs 2 times") {
		t.Errorf("repeated Authorization on /api: %d %s", resp.StatusCode, b)
	}
}

// TestEdgeMissingSessionID: in the session era, a message other than
// initialize without Mcp-Session-Id is refused with HTTP 400 and a
// JSON-RPC error with a real code; the SDK alone would open a session for
// it and answer HTTP 200.
func TestEdgeMissingSessionID(t *testing.T) {
	p := startEdgeGateway(t)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"mcpedge__status","arguments":{}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		for _, version := range []string{"", "2025-11-25", "2025-06-18"} {
			hdr := map[string][]string{}
			if version != "" {
				hdr["Mcp-Protocol-Version"] = []string{version}
			}
			status, m := edgePost(t, p.URL+"/mcp", body, hdr)
			code, msg := rpcError(m)
			if status != http.StatusBadRequest || code != -32600 || !strings.Contains(msg, "Mcp-Session-Id") {
				t.Errorf("%s (version %q) without a session: %d %v; want 400 with code -32600 naming Mcp-Session-Id", body, version, status, m)
			}
		}
	}
	// Control: initialize opens a session, and the stateless era needs none.
	if status, m := edgePost(t, p.URL+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil); status != http.StatusOK {
		t.Errorf("initialize: %d %v", status, m)
	}
}
