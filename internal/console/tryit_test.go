package console

import (
	"net/url"
	"strings"
	"testing"
)

func TestTryItFormIsBuiltFromTheSchema(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn(e.acmeK)
	cat := b.get("/ui/catalog?q=ev__typed")
	for _, want := range []string{
		`name="arg:integer:count" type="number" step="1"`,
		`name="arg:number:ratio" type="number" step="any"`,
		`name="arg:boolean:loud"><option value="">(not sent)</option><option value="true">`,
		`name="arg:string:mode"><option value="">(not sent)</option><option value="fast">fast</option><option value="slow">`,
		`name="arg:json:tags" rows="2"`,
		`count <span aria-label="required">*</span>`,
	} {
		if !strings.Contains(cat.body, want) {
			t.Fatalf("the form lacks %s:\n%s", want, cat.body)
		}
	}
	res := b.post("/ui/catalog/call", url.Values{"tool": {"ev__typed"}, "arguments": {`{"count": 0, "mode": "slow"}`},
		"arg:integer:count": {"7"}, "arg:number:ratio": {"0.5"}, "arg:boolean:loud": {"true"}, "arg:string:mode": {""}, "arg:json:tags": {`["a","b"]`}})
	if !strings.Contains(res.body, `got {&#34;count&#34;:7,&#34;ratio&#34;:0.5,&#34;loud&#34;:true,&#34;mode&#34;:&#34;slow&#34;,&#34;tags&#34;:[&#34;a&#34;,&#34;b&#34;]}`) {
		t.Fatalf("the typed call:\n%s", res.body)
	}
	for field, msg := range map[string]string{
		"arg:integer:count": "must be a whole number",
		"arg:number:ratio":  "must be a number",
		"arg:boolean:loud":  "must be true or false",
		"arg:json:tags":     "is not JSON",
		"arg:color:x":       "unknown kind",
	} {
		p := b.post("/ui/catalog/call", url.Values{"tool": {"ev__typed"}, "arguments": {`{"count": 1}`}, field: {"nonsense"}})
		if !strings.Contains(p.body, msg) || strings.Contains(p.body, "got {") {
			t.Errorf("%s=nonsense: no %q, or the tool was called:\n%s", field, msg, p.body)
		}
	}
	if p := b.post("/ui/catalog/call", url.Values{"tool": {"ev__typed"}, "arguments": {`null`}}); !strings.Contains(p.body, "not a JSON object") {
		t.Fatalf("null arguments:\n%s", p.body)
	}
}

func FuzzArgumentFields(f *testing.F) {
	f.Add("arg:integer:n", "12")
	f.Add("arg:json:x", `{"a":[1,2]}`)
	f.Add("arg:boolean:", "true")
	f.Add("arg::x", "1")
	f.Fuzz(func(t *testing.T, key, val string) {
		args := map[string]any{}
		problem := fromFields(url.Values{key: {val}}, args)
		if problem != "" && len(args) != 0 {
			t.Fatalf("a refused field set an argument: %v", args)
		}
		if len(args) > 1 {
			t.Fatalf("one field set %d arguments", len(args))
		}
	})
}
