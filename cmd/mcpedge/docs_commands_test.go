package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// runnableMarker, on the line before a fenced block in README.md or
// docs/*.md, says that every `mcpedge …` line of the block runs offline
// on a fresh data directory and must succeed; TestDocumentedCommands runs
// them (the way CoreDNS runs the examples of its READMEs).
const runnableMarker = "<!-- runnable -->"

// docBlock is one runnable block: where it is and its command lines.
type docBlock struct {
	where string // file:line of the marker
	lines []string
}

// envAssign matches the VAR=value words before a command.
var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=('[^']*'|"[^"]*"|\S*)\s+`)

// runnableBlocks reads the runnable blocks of one Markdown file.
func runnableBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []docBlock
		cur     *docBlock
		pending string // where a marker waits for its fence
		cont    string // a line continued with a backslash
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case cur != nil && strings.HasPrefix(trim, "```"):
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			if strings.HasSuffix(line, `\`) {
				cont += strings.TrimSuffix(line, `\`) + " "
				continue
			}
			line, cont = cont+line, ""
			cmd := envAssign.ReplaceAllString(strings.TrimSpace(line), "")
			for envAssign.MatchString(cmd) {
				cmd = envAssign.ReplaceAllString(cmd, "")
			}
			if strings.HasPrefix(cmd, "mcpedge ") {
				cur.lines = append(cur.lines, strings.TrimSpace(line))
			}
		case trim == runnableMarker:
			pending = path + ":" + strconv.Itoa(n)
		case pending != "" && strings.HasPrefix(trim, "```"):
			cur, pending = &docBlock{where: pending}, ""
		case pending != "" && trim != "":
			t.Errorf("%s: %s is not followed by a fenced block", pending, runnableMarker)
			pending = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Errorf("%s: the runnable block is not closed", cur.where)
	}
	return blocks
}

// TestDocumentedCommands runs every `mcpedge …` line of the blocks marked
// runnable in README.md and docs/*.md against the built binary, each
// block in a fresh directory with its own data directory, in order, and
// checks that each exits 0.
func TestDocumentedCommands(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	var blocks []docBlock
	for _, f := range files {
		blocks = append(blocks, runnableBlocks(t, f)...)
	}
	commands := 0
	for _, b := range blocks {
		commands += len(b.lines)
	}
	// The marker must keep being used: a test that finds nothing to run
	// proves nothing.
	if len(blocks) < 4 || commands < 20 {
		t.Fatalf("only %d runnable blocks with %d commands in README.md and docs/*.md", len(blocks), commands)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run the documented command lines with")
	}
	for _, b := range blocks {
		t.Run(strings.TrimPrefix(b.where, "../../"), func(t *testing.T) {
			dir := t.TempDir()
			env := append(os.Environ(),
				"PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"),
				"XDG_DATA_HOME="+filepath.Join(dir, "data"), "HOME="+dir,
				"MCPEDGE_ADMIN_KEY="+testAdminKey, "MCPEDGE_PASSWORD=", "MCPEDGE_QUEUE_KEY=", "MCPEDGE_STORE_KEY=")
			for _, line := range b.lines {
				cmd := exec.Command(sh, "-c", line)
				cmd.Dir, cmd.Env = dir, env
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s: %s: %v\n%s", b.where, line, err, out)
				}
			}
		})
	}
}
