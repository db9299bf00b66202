package firstrun

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds the operator key to every request.
type bearer struct{ base http.RoundTripper }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+operatorKey)
	return b.base.RoundTrip(r)
}

// callEcho calls the everything server's echo tool of upstream name
// through the gateway's /mcp.
func callEcho(t *testing.T, p *proc, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "firstrun", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: p.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name + "__echo", Arguments: map[string]any{"message": "from " + name}})
	if err != nil {
		t.Fatalf("%s__echo: %v", name, err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "Echo: from "+name {
		t.Fatalf("%s__echo answered %+v", name, res.Content)
	}
}

// samples is where the client samples live, and the node project whose
// installed server-everything `npx -y @modelcontextprotocol/server-everything`
// finds without a download when run there.
func samples(t *testing.T) (dir, nodeDir string) {
	t.Helper()
	everything(t) // the node modules are installed
	root, err := nodeclient.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("npx"); err != nil {
		t.Skip("npx is not installed: the samples start their server with npx")
	}
	return filepath.Join(root, "internal", "config", "testdata", "clients"), filepath.Join(root, "test", "node")
}

// TestClientFilesServed serves each client's sample file as it is
// (--mcp-servers) and calls its servers' tools through /mcp; then the
// same through the TOML `mcpedge config import` prints of it.
func TestClientFilesServed(t *testing.T) {
	dir, nodeDir := samples(t)
	remote := nodeclient.StartEverythingHTTP(t)
	ru, err := url.Parse(remote)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOME=" + t.TempDir(), // npx's cache and logs
		"SAMPLE_API_KEY=k1",
		"MCPEDGE_INPUT_API_KEY=k2",
		"EVERYTHING_URL=" + remote,
		"EVERYTHING_PORT=" + ru.Port(),
	}
	tests := []struct {
		file      string
		upstreams []string
	}{
		{"claude_desktop_config.json", []string{"everything"}},
		{"cursor_mcp.json", []string{"everything"}},
		{"vscode_mcp.json", []string{"everything"}},
		{"claude_code_mcp.json", []string{"everything"}},
		{"windsurf_mcp_config.json", []string{"everything", "everything-remote"}},
		{"server.json", []string{"everything"}},
		{"server_remote.json", []string{"everything-remote"}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			sample := filepath.Join(dir, tc.file)
			check := func(p *proc) {
				for _, name := range tc.upstreams {
					u := p.waitUpstream(t, name, 90*time.Second, "ready", func(u upstreamStatus) bool { return u.State == "ready" })
					if u.Tools == 0 {
						t.Errorf("%s: ready without tools", name)
					}
					callEcho(t, p, name)
				}
				p.stop(t)
			}
			check(serveIn(t, nodeDir, env, "--mcp-servers", sample))

			imp := exec.Command(binary, "config", "import", sample)
			imp.Env = append(os.Environ(), env...)
			toml, err := imp.Output()
			if err != nil {
				t.Fatalf("config import: %v", err)
			}
			for _, secret := range []string{"k1", "k2", ru.Port()} {
				if strings.Contains(string(toml), `"`+secret+`"`) || strings.Contains(string(toml), ":"+secret+"/") {
					t.Errorf("the import wrote the value of a reference (%s):\n%s", secret, toml)
				}
			}
			cfg := writeFile(t, t.TempDir(), "imported.toml", string(toml))
			check(serveIn(t, nodeDir, env, "--config", cfg))
		})
	}
}

// TestConfigWithClientFile: --config and --mcp-servers together serve the
// TOML's upstreams and the client file's; an upstream in both is an error
// that names both files.
func TestConfigWithClientFile(t *testing.T) {
	dir, nodeDir := samples(t)
	cmd, args := everything(t)
	tdir := t.TempDir()
	cfg := writeFile(t, tdir, "mcpedge.toml", `[auth]
mode = "off"

[[upstreams]]
name = "local"
command = `+q(cmd)+`
args = `+qlist(args)+`
`)
	desktop := filepath.Join(dir, "claude_desktop_config.json")
	p := serveIn(t, nodeDir, []string{"HOME=" + t.TempDir()}, "--config", cfg, "--mcp-servers", desktop)
	for _, name := range []string{"local", "everything"} {
		p.waitUpstream(t, name, 90*time.Second, "ready", func(u upstreamStatus) bool { return u.State == "ready" })
		callEcho(t, p, name)
	}
	p.stop(t)

	clash := writeFile(t, tdir, "clash.toml", "[[upstreams]]\nname = \"everything\"\ncommand = \"true\"\n")
	out, err := exec.Command(binary, "config", "check", "--config", clash, "--mcp-servers", desktop).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `upstream "everything" is in both `+clash+` and `+desktop) {
		t.Errorf("a clash: %v\n%s", err, out)
	}
}
