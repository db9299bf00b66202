package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
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
