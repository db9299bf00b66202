package pin

import (
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// FuzzDefinition feeds definitions as an upstream could send them: no
// panic, a definition that is stable when fingerprinted again, and a diff
// that is empty exactly for equal definitions.
func FuzzDefinition(f *testing.F) {
	f.Add([]byte(`{"name":"read","description":"d","inputSchema":{"type":"object"}}`), []byte(`{"name":"read"}`))
	f.Add([]byte(`{"name":"x","arguments":[{"name":"a"}]}`), []byte(`{}`))
	f.Add([]byte(`[1,2]`), []byte(`{"uriTemplate":"a/{b}","mimeType":null}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, kind := range []string{store.PinTool, store.PinPrompt, store.PinTemplate} {
			da, ha, err := Definition(kind, a)
			if err != nil {
				continue
			}
			da2, ha2, err := Definition(kind, da)
			if err != nil || ha2 != ha || string(da2) != string(da) {
				t.Fatalf("not stable: %s -> %s (%v)", da, da2, err)
			}
			if Diff(da, da) != "" {
				t.Fatal("diff of equal definitions")
			}
			db, hb, err := Definition(kind, b)
			if err != nil {
				continue
			}
			d := Diff(da, db)
			if (d == "") != (ha == hb) {
				t.Fatalf("diff %q for hashes %s, %s", d, ha, hb)
			}
			if d != "" && !strings.HasPrefix(d, "--- pinned\n+++ offered\n@@ -") {
				t.Fatalf("diff %q", d)
			}
			if _, err := substitute(kind, b, da); err != nil {
				t.Fatalf("substitute: %v", err)
			}
		}
	})
}
