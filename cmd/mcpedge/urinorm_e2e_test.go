package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/e2e/nodeclient"
)

// TestResourceURISpellingsOnTheRealBinary: the official TypeScript SDK
// client reads a resource of the reference "everything" server from npm
// through the real binary in spellings of its URI other than the one the
// server's template matches (scheme and host case, escapes of unreserved
// characters, dot segments); each reaches the server in the normal form
// and comes back, while a file: URI that climbs with ".." is refused.
func TestResourceURISpellingsOnTheRealBinary(t *testing.T) {
	cfg := writeConfig(t, "[auth]\nmode = \"off\"\n"+everythingBlock(t, "ev"))
	p := startServe(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "--config", cfg)
	p.waitReady(t, "ev")
	for _, url := range []string{p.URL + "/mcp", p.URL + "/mcp/ev"} {
		for _, uri := range []string{
			"demo://resource/dynamic/text/3",
			"DEMO://Resource/dynamic/text/3",
			"demo://resource/dynamic/%74ext/%33",
			"demo://resource/static/../dynamic/./text/3",
		} {
			res := nodeclient.Run(t, url, "read", map[string]any{"uri": uri})
			raw, _ := json.Marshal(res["result"])
			if !strings.Contains(string(raw), `"uri":"demo://resource/dynamic/text/3"`) || !strings.Contains(string(raw), "3") {
				t.Errorf("%s: read %s: %s", url, uri, raw)
			}
		}
		res, err := nodeclient.Try(t, url, "read", map[string]any{"uri": "file:///srv/../etc/passwd"})
		if raw, _ := json.Marshal(res); err == nil || !strings.Contains(string(raw), "-32602") || !strings.Contains(string(raw), "climbs out") {
			t.Errorf("%s: a file: URI that climbs: %v %s", url, err, raw)
		}
	}
}
