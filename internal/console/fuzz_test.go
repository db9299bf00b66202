package console

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// FuzzCatalogPage renders a tool whose description and input schema come
// from an upstream (outside input): whatever they hold, rendering never
// fails or panics, and markup in them never comes out as markup.
func FuzzCatalogPage(f *testing.F) {
	f.Add("echo", "Echoes.", []byte(`{"type":"object","properties":{"message":{"type":"string","description":"what"}},"required":["message"]}`))
	f.Add("x", xss, []byte(`{"type":"object","properties":{"<b>":{"type":["string","null"],"description":"`+strings.ReplaceAll(xss, `"`, `\"`)+`"}},"required":["<b>",1]}`))
	f.Add("y", "", []byte(`{"properties":[],"required":{}}`))
	f.Add("z", "", []byte(`null`))
	f.Fuzz(func(t *testing.T, name, desc string, schema []byte) {
		var s any
		if json.Unmarshal(schema, &s) != nil {
			return
		}
		tv := viewTool(&mcp.Tool{Name: name, Description: desc, InputSchema: s})
		var m markup
		d := pageData{Title: "Catalog", Tools: []toolView{tv}}
		layout(&m, &head{Title: d.Title}, mainOf("catalog", &d))
		if strings.Contains(m.String(), "<script") {
			t.Fatalf("markup came out as markup:\n%s", m.String())
		}
	})
}
