package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
)

// TestStderrLogged: a child's stderr is logged at info line by line, at
// most stderrBurst lines at once and stderrPerSecond a second after that;
// the lines left out are counted in the next line logged, and the tail
// keeps the last lines whatever was logged.
func TestStderrLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil)).With("upstream", "u")
	var tail stderrTail
	now := time.Unix(1000, 0)
	l := newLineLogger(log, &tail)
	l.now = func() time.Time { return now }

	for i := range stderrBurst + 10 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	now = now.Add(time.Second) // stderrPerSecond lines more
	for i := range stderrPerSecond {
		fmt.Fprintf(l, "later %d", i)
		l.Write([]byte("\r\n"))
	}
	l.Write([]byte("partial ")) // no newline yet: not a line
	var lines []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if len(lines) != stderrBurst+stderrPerSecond {
		t.Fatalf("%d lines logged, want %d", len(lines), stderrBurst+stderrPerSecond)
	}
	for _, m := range lines {
		if m["level"] != "INFO" || m["upstream"] != "u" || m["msg"] != "upstream stderr" {
			t.Fatalf("logged as %v", m)
		}
	}
	first := lines[stderrBurst]
	if first["line"] != "later 0" || first["lines_not_logged_before"] != float64(10) {
		t.Errorf("first line after the pause: %v", first)
	}
	got := tail.lastLines()
	if len(got) != stderrTailLines || got[len(got)-1] != fmt.Sprintf("later %d", stderrPerSecond-1) {
		t.Errorf("tail: %q", got)
	}
	l.Write([]byte(strings.Repeat("x", stderrMaxLine+10)))
	if got := tail.lastLines(); len(got[len(got)-1]) != stderrMaxLine+len("…") {
		t.Errorf("a long line is cut at %d bytes: %d", stderrMaxLine, len(got[len(got)-1]))
	}
}

func TestTelling(t *testing.T) {
	tail := []string{"node:internal/modules/cjs/loader:1210", "Error: Cannot find module '/x.js'", "    at Module._load", "Node.js v20"}
	if got := telling(tail); len(got) != 2 || got[0] != "Error: Cannot find module '/x.js'" || got[1] != "Node.js v20" {
		t.Errorf("telling = %q", got)
	}
	if got := telling([]string{"a", "b"}); len(got) != 1 || got[0] != "b" {
		t.Errorf("telling = %q", got)
	}
}

// TestExplainConnectErr: each kind of failed connect is said as what it
// is, with a hint; a time-out says how long was waited and what the
// child said.
func TestExplainConnectErr(t *testing.T) {
	stdio := config.Upstream{Name: "s", Transport: config.TransportStdio, Command: "srv"}
	npx := config.Upstream{Name: "n", Transport: config.TransportStdio, Command: "npx", Args: []string{"-y", "@x/server"}}
	web := config.Upstream{Name: "w", Transport: config.TransportHTTP, URL: "http://user:pw@h.example:8080/mcp"}
	dnsErr := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "h.example", Err: "no such host", IsNotFound: true}}
	for _, tc := range []struct {
		name     string
		cfg      config.Upstream
		err      error
		timedOut bool
		tail     []string
		want     []string
	}{
		{"dns", web, fmt.Errorf("calling initialize: %w", dnsErr), false, nil, []string{`host name "h.example" does not resolve`, "hint: check the URL's host name"}},
		{"refused", web, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, false, nil, []string{"connection refused by h.example:8080", "hint: nothing listens there"}},
		{"reset", web, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, false, nil, []string{"can not reach h.example:8080"}},
		{"no such dir", stdio, &fs.PathError{Op: "chdir", Path: "/nope", Err: syscall.ENOENT}, false, nil, []string{`working directory "/nope" can not be entered`}},
		{"not found", stdio, &exec.Error{Name: "srv", Err: exec.ErrNotFound}, false, nil, []string{`command "srv" not found`, "hint: install it"}},
		{"timeout of a package runner", npx, nil, true, []string{"npm warn exec installing @x/server"}, []string{"no answer to initialize within 2m0s", "the server said: npm warn exec installing @x/server", "hint: npx @x/server may still be downloading the server: raise start_timeout (now 2m0s)"}},
		{"timeout of an http server", web, context.Canceled, true, nil, []string{"no answer to initialize within 10s: context canceled", "check that the URL is its MCP endpoint"}},
		{"exited", stdio, errors.New("connection closed: EOF"), false, []string{"Traceback (most recent call last):", "ModuleNotFoundError: No module named 'mcp'"}, []string{"the server stopped before answering initialize: connection closed: EOF; the server said: ModuleNotFoundError: No module named 'mcp'"}},
		{"other", web, errors.New("401 Unauthorized"), false, nil, []string{"401 Unauthorized"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := 10 * time.Second
			if tc.cfg.IsPackageRunner() {
				budget = 2 * time.Minute
			}
			got := explainConnectErr(tc.cfg, tc.err, tc.timedOut, budget, tc.tail).Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if strings.Contains(got, "pw@") {
				t.Errorf("credentials in %q", got)
			}
		})
	}
}
