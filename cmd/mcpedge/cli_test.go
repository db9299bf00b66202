package main

import (
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	_ "github.com/mcpedge/mcpedge/internal/store/open" // the database/sql driver "sqlite"
)

// The stumbles of a first hour with the command line (issue 16), each on
// the real binary.

// TestServeBareConfigFile: a configuration file given without --config is
// an error that names it, before anything listens; today's defaults on
// :8080 were served instead.
func TestServeBareConfigFile(t *testing.T) {
	cfg := writeConfig(t, "[server]\nlisten = \"127.0.0.1:0\"\n")
	_, errs, code := mcpedge(t, "", secEnv(t), "serve", cfg, "--listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errs, `unexpected argument "`+cfg+`"`) || !strings.Contains(errs, "--config "+cfg) {
		t.Fatalf("serve FILE: exit %d\n%s", code, errs)
	}
	for _, args := range [][]string{
		{"stdio", "servers.json"},
		{"config", "check", "x.toml"},
		{"tenant", "ls", "extra"},
		{"version", "extra"},
		{"lattice", "bench", "extra"},
	} {
		if _, errs, code := mcpedge(t, "", nil, args...); code != 2 || !strings.Contains(errs, "unexpected argument") {
			t.Errorf("mcpedge %s: exit %d\n%s", strings.Join(args, " "), code, errs)
		}
	}
}

// TestTenantRemoveAsks: tenant rm refuses the operator tenant, asks on a
// terminal (no: nothing changes; yes: removed) and refuses without --yes
// when stdin is not one.
func TestTenantRemoveAsks(t *testing.T) {
	cfg, _ := adminStore(t)
	c := []string{"--config", cfg}
	mustRun(t, append([]string{"tenant", "create", "acme"}, c...)...)
	if _, errs, code := mcpedge(t, "", nil, append([]string{"tenant", "rm", "default", "--yes"}, c...)...); code != 1 || !strings.Contains(errs, "last operator tenant") {
		t.Errorf("tenant rm default: exit %d\n%s", code, errs)
	}
	if _, errs, code := mcpedge(t, "y\n", nil, append([]string{"tenant", "rm", "acme"}, c...)...); code != 2 || !strings.Contains(errs, "add --yes") {
		t.Errorf("tenant rm without a terminal and --yes: exit %d\n%s", code, errs)
	}
	if out := mustRun(t, append([]string{"tenant", "ls"}, c...)...); !strings.Contains(out, "acme") {
		t.Fatalf("acme is gone after a refused rm:\n%s", out)
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to give the command a terminal: the prompt is tested in internal/cmdline")
	}
	out, code := onTerminal(t, "n\n", append([]string{"tenant", "rm", "acme"}, c...)...)
	if code != 1 || !strings.Contains(out, "remove tenant acme") || !strings.Contains(out, "[y/N]") || !strings.Contains(out, "aborted") {
		t.Errorf("answering no: exit %d\n%s", code, out)
	}
	if out := mustRun(t, append([]string{"tenant", "ls"}, c...)...); !strings.Contains(out, "acme") {
		t.Fatalf("acme is gone after answering no:\n%s", out)
	}
	if out, code := onTerminal(t, "y\n", append([]string{"tenant", "rm", "acme"}, c...)...); code != 0 || !strings.Contains(out, "removed tenant acme") {
		t.Errorf("answering yes: exit %d\n%s", code, out)
	}
	if out := mustRun(t, append([]string{"tenant", "ls"}, c...)...); strings.Contains(out, "acme") {
		t.Errorf("acme is still there:\n%s", out)
	}
}

// onTerminal runs the binary on a pseudo-terminal (script(1)) with input
// typed into it, and returns what the terminal showed and the exit code.
func onTerminal(t *testing.T, input string, args ...string) (string, int) {
	t.Helper()
	quoted := []string{shellQuote(binary)}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	cmd := exec.Command("script", "-qefc", strings.Join(quoted, " "), "/dev/null")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestStoreNotBootstrappedAgain: a store whose tenants were all removed
// (here behind mcpedge's back) is refused by the next command with how to
// recover, instead of handing out a new owner key; mcpedge bootstrap does
// it on purpose.
func TestStoreNotBootstrappedAgain(t *testing.T) {
	cfg, db := adminStore(t)
	c := []string{"--config", cfg}
	_, errs, _ := mcpedge(t, "", nil, append([]string{"tenant", "ls"}, c...)...)
	if !strings.Contains(errs, "first start") {
		t.Fatalf("no first start on a new store:\n%s", errs)
	}
	sdb, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`DELETE FROM tenants`); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	out, errs, code := mcpedge(t, "", nil, append([]string{"tenant", "ls"}, c...)...)
	if code != 1 || !strings.Contains(errs, "set up before") || !strings.Contains(errs, "mcpedge bootstrap") || strings.Contains(out+errs, "mcpe_") {
		t.Fatalf("tenant ls on an emptied store: exit %d\n%s%s", code, out, errs)
	}
	out = mustRun(t, append([]string{"bootstrap"}, c...)...)
	if !strings.Contains(out, "mcpe_") {
		t.Fatalf("bootstrap printed no key:\n%s", out)
	}
	if out := mustRun(t, append([]string{"tenant", "ls"}, c...)...); !strings.Contains(out, "default") {
		t.Errorf("after bootstrap: %s", out)
	}
	if _, errs, code := mcpedge(t, "", nil, append([]string{"bootstrap"}, c...)...); code != 1 || !strings.Contains(errs, "nothing to recover") {
		t.Errorf("bootstrap of a store with tenants: exit %d\n%s", code, errs)
	}
}

// TestInputChecked: scopes from the known set, unknown upstreams named,
// numbers in range, --tenant where it is needed; the same messages as
// the API (internal/admin tests those).
func TestInputChecked(t *testing.T) {
	cfg := writeConfig(t, "[store]\nurl = \"sqlite://"+filepath.ToSlash(filepath.Join(t.TempDir(), "s.db"))+"\"\n[[upstreams]]\nname = \"github\"\ncommand = \"true\"\n")
	c := []string{"--config", cfg}
	if _, errs, code := mcpedge(t, "", nil, append([]string{"key", "create", "--tenant", "default", "--scopes", "nope"}, c...)...); code != 1 || !strings.Contains(errs, "grant nothing") {
		t.Errorf("key create --scopes nope: exit %d\n%s", code, errs)
	}
	out, errs, code := mcpedge(t, "", nil, append([]string{"tenant", "create", "y", "--upstreams", "github,doesnotexist"}, c...)...)
	if code != 0 || !strings.Contains(errs, "warning: upstream doesnotexist is not configured (configured: github)") || !strings.Contains(out, "created tenant y") {
		t.Errorf("tenant create --upstreams doesnotexist: exit %d\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"lattice", "bench", "--repeats", "-1"}, "--repeats must be 1 to 1000"},
		{[]string{"lattice", "bench", "--workers", "-3"}, "--workers must be"},
		{[]string{"key", "ls"}, "--tenant is required"},
		{append([]string{"plan", "set", "x", "--key-per-minute", "-5"}, c...), "key_per_minute must not be negative"},
		{append([]string{"queue", "ls", "--limit", "0"}, c...), "--limit must be 1 to"},
	} {
		if _, errs, code := mcpedge(t, "", nil, tc.args...); code != 2 || !strings.Contains(errs, tc.msg) {
			t.Errorf("mcpedge %s: exit %d, want 2 with %q\n%s", strings.Join(tc.args, " "), code, tc.msg, errs)
		}
	}
}

// TestVersionJSON: version --json prints JSON (it printed text).
func TestVersionJSON(t *testing.T) {
	out := mustRun(t, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version != version || v.Go == "" {
		t.Fatalf("version --json: %v %s", err, out)
	}
	if out := mustRun(t, "--version"); !strings.HasPrefix(out, "mcpedge ") {
		t.Errorf("--version: %s", out)
	}
}

// TestStdioOwnerKeyNotOnStderr: stdio mode's first start writes the
// owner key to <data_dir>/owner-key (0600) and says where, never to
// stderr, which desktop clients keep in their logs.
func TestStdioOwnerKeyNotOnStderr(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "[server]\ndata_dir = \""+filepath.ToSlash(dir)+"\"\n")
	cmd := exec.Command(binary, "stdio", "--config", cfg)
	cmd.Env = append(os.Environ(), "MCPEDGE_ADMIN_KEY=", "XDG_DATA_HOME="+t.TempDir())
	var errb lockedBuffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil { // stdin is empty: it exits at once
		t.Fatalf("stdio: %v\n%s", err, errb.String())
	}
	path := filepath.Join(dir, ownerKeyFile)
	key, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(key), "mcpe_") {
		t.Fatalf("owner key file: %v %q\nstderr: %s", err, key, errb.String())
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("owner key file mode %v", st.Mode())
	}
	if strings.Contains(errb.String(), strings.TrimSpace(string(key))) || !strings.Contains(errb.String(), path) {
		t.Errorf("stderr shows the key or not the file:\n%s", errb.String())
	}
}

// TestCompletionAndManPages: completions for the usual shells and the man
// pages come from the same declaration as the parser.
func TestCompletionAndManPages(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if out := mustRun(t, "completion", sh); !strings.Contains(out, "mcpedge") {
			t.Errorf("completion %s: %.200s", sh, out)
		}
	}
	// The values completion offers come from the declaration too.
	if out := mustRun(t, "__complete", "pins", "diff", "fs", ""); !strings.Contains(out, "tool\nprompt\ntemplate") {
		t.Errorf("completion of a pin's KIND: %q", out)
	}
	if out := mustRun(t, "__complete", "key", "create", "--role", ""); !strings.Contains(out, "viewer\nmember\nadmin\nowner") {
		t.Errorf("completion of --role: %q", out)
	}
	dir := t.TempDir()
	mustRun(t, "docs", "man", dir)
	for _, page := range []string{"mcpedge.1", "mcpedge-serve.1", "mcpedge-tenant-rm.1", "mcpedge-hub-devices-pcrs.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil || !strings.Contains(string(b), ".TH") {
			t.Errorf("man page %s: %v", page, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mcpedge-tenant-rm.1")); !strings.Contains(string(b), "yes") {
		t.Errorf("tenant rm's man page lacks --yes")
	}
}

// TestCLIReferenceComplete: docs/cli.md names every command the binary
// has, so that the reference can not fall behind the declaration.
func TestCLIReferenceComplete(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	root := (&app{stdin: strings.NewReader(""), stdout: os.Stdout, stderr: os.Stderr}).rootCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() && s.Name() != "help" {
				continue
			}
			if s.Name() == "help" {
				continue
			}
			if !strings.Contains(doc, "`"+s.CommandPath()) {
				t.Errorf("docs/cli.md does not describe %q", s.CommandPath())
			}
			walk(s)
		}
	}
	walk(root)
}

// TestAuditExportDetailJSON: audit export writes detail as the JSON object
// it is (it was base64), and the verifier script docs/operations.md gives
// for archived exports still checks the chain from those lines.
func TestAuditExportDetailJSON(t *testing.T) {
	cfg, _ := adminStore(t)
	c := []string{"--config", cfg}
	mustRun(t, append([]string{"tenant", "create", "acme", "--plan", "pro"}, c...)...)
	out := mustRun(t, append([]string{"audit", "export"}, c...)...)
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if e["action"] == "tenant.create" {
			d, ok := e["detail"].(map[string]any)
			found = ok && d["name"] == "acme" && d["plan"] == "pro"
		}
	}
	if !found {
		t.Fatalf("no tenant.create entry with its detail as an object:\n%s", out)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run the documented verifier with")
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, script, ok := strings.Cut(string(doc), "```python\n")
	script, _, _ = strings.Cut(script, "```")
	if !ok || script == "" {
		t.Fatal("no python verifier in docs/operations.md")
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(out)
	res, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(res), "ok: ") {
		t.Fatalf("the documented verifier on an export: %v\n%s", err, res)
	}
	if head := strings.TrimSpace(mustRun(t, append([]string{"audit", "verify", "--json"}, c...)...)); !strings.Contains(head, `"ok": true`) {
		t.Errorf("audit verify --json: %s", head)
	}
}
