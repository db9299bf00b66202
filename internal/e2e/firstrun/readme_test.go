package firstrun

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
)

// readmeBlock returns the fenced block that follows marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i+len(marker):]
	start := strings.Index(s, "```")
	if start < 0 {
		t.Fatalf("no code block after %q", marker)
	}
	s = s[start+3:]
	s = s[strings.IndexByte(s, '\n')+1:]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatalf("unterminated code block after %q", marker)
	}
	return s[:end]
}

// curlRequest is one documented curl command line.
type curlRequest struct {
	method  string
	url     string
	headers [][2]string
	body    string
}

// shellWords splits a command line as sh does for what the README uses:
// single quotes literal, double quotes and bare words with $VAR expanded.
func shellWords(t *testing.T, line string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	expand := func(s string) string {
		return os.Expand(s, func(name string) string {
			v, ok := vars[name]
			if !ok {
				t.Fatalf("the README's curl session uses $%s before setting it", name)
			}
			return v
		})
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated ' in %s", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(line[i+1:], '"')
			if j < 0 {
				t.Fatalf("unterminated \" in %s", line)
			}
			cur.WriteString(expand(line[i+1 : i+1+j]))
			i += j + 1
			inWord = true
		default:
			j := strings.IndexAny(line[i:], " \t'\"")
			if j < 0 {
				j = len(line) - i
			}
			cur.WriteString(expand(line[i : i+j]))
			i += j - 1
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// parseCurl reads the options of curl the README uses.
func parseCurl(t *testing.T, words []string) curlRequest {
	t.Helper()
	r := curlRequest{method: http.MethodGet}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() string {
			i++
			if i >= len(words) {
				t.Fatalf("%s without a value", w)
			}
			return words[i]
		}
		switch w {
		case "-s", "-i", "-si", "-is":
		case "-X":
			r.method = next()
		case "-H":
			k, v, ok := strings.Cut(next(), ":")
			if !ok {
				t.Fatalf("header %q", words[i])
			}
			r.headers = append(r.headers, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		case "-d":
			r.body = next()
			if r.method == http.MethodGet {
				r.method = http.MethodPost
			}
		default:
			if strings.HasPrefix(w, "-") {
				t.Fatalf("curl option %s is not understood by this test", w)
			}
			r.url = w
		}
	}
	return r
}

// TestReadmeCurlSession replays the README's curl session, request by
// request, exactly as documented, against the binary: the docs stay true.
func TestReadmeCurlSession(t *testing.T) {
	block := readmeBlock(t, "<!-- curl-session -->")
	p := serve(t, nil)
	vars := map[string]string{}
	var requests int
	var logical []string
	var cur string
	for _, line := range strings.Split(block, "\n") {
		if c, ok := strings.CutSuffix(line, "\\"); ok {
			cur += strings.TrimSpace(c) + " "
			continue
		}
		logical = append(logical, cur+strings.TrimSpace(line))
		cur = ""
	}
	for _, line := range logical {
		if i := strings.Index(line, "#"); i >= 0 && !strings.Contains(line[:i], "'") {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if name, _, ok := strings.Cut(line, "="); ok && !strings.Contains(name, " ") {
			// KEY=…, URL=…, SESSION=…: the test's own values, as the
			// reader fills them in.
			switch name {
			case "KEY":
				vars[name] = operatorKey
			case "URL":
				vars[name] = p.URL + "/mcp"
			case "SESSION":
				if vars[name] == "" {
					t.Fatal("SESSION is set before an answer named it")
				}
			default:
				t.Fatalf("unexpected variable %s in the curl session", name)
			}
			continue
		}
		words := shellWords(t, line, vars)
		if len(words) == 0 || words[0] != "curl" {
			t.Fatalf("not a curl command: %s", line)
		}
		r := parseCurl(t, words)
		req, err := http.NewRequest(r.method, r.url, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range r.headers {
			req.Header.Add(h[0], h[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		requests++
		var method string
		if r.body != "" {
			var m struct{ Method string }
			if err := json.Unmarshal([]byte(r.body), &m); err != nil {
				t.Fatalf("the documented body is not JSON: %v: %s", err, r.body)
			}
			method = m.Method
		}
		switch {
		case method == "initialize":
			vars["SESSION"] = resp.Header.Get("Mcp-Session-Id")
			if resp.StatusCode != http.StatusOK || vars["SESSION"] == "" || !bytes.Contains(body, []byte(`"protocolVersion"`)) {
				t.Fatalf("initialize: %s, session %q: %s", resp.Status, vars["SESSION"], body)
			}
		case method == "notifications/initialized":
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("notifications/initialized: %s %s", resp.Status, body)
			}
		case method == "tools/list":
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"mcpedge__status"`)) {
				t.Fatalf("tools/list: %s %s", resp.Status, body)
			}
		case method == "tools/call":
			res := sseResult(t, body)
			if resp.StatusCode != http.StatusOK || res["isError"] == true || res["content"] == nil {
				t.Fatalf("tools/call: %s %s", resp.Status, body)
			}
		case r.method == http.MethodDelete:
			if resp.StatusCode/100 != 2 {
				t.Fatalf("DELETE: %s %s", resp.Status, body)
			}
		default:
			t.Fatalf("an undocumented step: %s", line)
		}
	}
	if requests != 5 {
		t.Errorf("%d requests in the README's session, want 5", requests)
	}
}

// sseResult returns the result of the JSON-RPC answer in an SSE or JSON
// body.
func sseResult(t *testing.T, body []byte) map[string]any {
	t.Helper()
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			if strings.HasPrefix(line, "{") {
				data = line
			} else {
				continue
			}
		}
		var m struct {
			Result map[string]any `json:"result"`
		}
		if json.Unmarshal([]byte(data), &m) == nil && m.Result != nil {
			return m.Result
		}
	}
	t.Fatalf("no JSON-RPC result in %s", body)
	return nil
}

// TestReadmeClientFiles: the client configurations the README shows are
// client files as the clients read them — and as mcpedge reads them.
func TestReadmeClientFiles(t *testing.T) {
	t.Setenv("MCPEDGE_KEY", "mcpe_x")
	t.Setenv(config.InputEnvName("mcpedge-key"), "mcpe_x")
	for _, c := range []struct {
		marker, format, transport string
	}{
		{"<!-- client: vscode -->", config.FormatVSCode, "http"},
		{"<!-- client: cursor -->", config.FormatMCPServers, "http"},
		{"<!-- client: claude-desktop -->", config.FormatMCPServers, "stdio"},
	} {
		block := readmeBlock(t, c.marker)
		if f := config.ClientFormat([]byte(block)); f != c.format {
			t.Errorf("%s: format %q, want %q", c.marker, f, c.format)
		}
		cfg, err := config.ParseMCPServers("README.md", []byte(block))
		if err != nil {
			t.Errorf("%s: %v", c.marker, err)
			continue
		}
		u := cfg.Upstreams[0]
		switch c.transport {
		case "http":
			if u.Transport != "http" || u.URL != "http://127.0.0.1:8080/mcp" || u.Headers["Authorization"] != "Bearer mcpe_x" {
				t.Errorf("%s: %+v", c.marker, u)
			}
		case "stdio":
			if u.Transport != "stdio" || len(u.Args) == 0 || u.Args[0] != "stdio" {
				t.Errorf("%s: %+v", c.marker, u)
			}
		}
	}
}
