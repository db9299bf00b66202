package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDeferrableParse(t *testing.T) {
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	c, ps := parseT(t, head+`deferrable = ["send-mail", "file-ticket"]`+"\n", nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	u := c.Upstreams[0]
	if !u.IsDeferrable("send-mail") || !u.IsDeferrable("file-ticket") || u.IsDeferrable("read") {
		t.Errorf("deferrable %q", u.Deferrable)
	}
	c, ps = parseT(t, head+`deferrable = ["*"]`+"\n", nil)
	if ps != nil || !c.Upstreams[0].IsDeferrable("anything") {
		t.Errorf("[\"*\"]: %q %q", ps, c.Upstreams[0].Deferrable)
	}
	c, _ = parseT(t, head, nil)
	if c.Upstreams[0].IsDeferrable("x") {
		t.Error("deferrable by default")
	}
	if (FailureHandling{Deferrable: []string{"x"}}).FailureKey() == (FailureHandling{}).FailureKey() {
		t.Error("deferrable does not change the failure key")
	}
}

func TestDeferrableProblems(t *testing.T) {
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"not an array", head + `deferrable = "*"` + "\n",
			[]string{`c.toml:4:1: upstreams[0].deferrable: expected array of tool names, e.g. ["send-mail"] or ["*"], got string`}},
		{"bad elements", head + `deferrable = ["a", "", 3, "a"]` + "\n",
			[]string{
				`c.toml:4:20: upstreams[0].deferrable[1]: tool name must not be empty`,
				`c.toml:4:24: upstreams[0].deferrable[2]: expected a tool name (string), got integer`,
				`c.toml:4:27: upstreams[0].deferrable[3]: tool "a" is listed twice`,
			}},
		{"star with others", head + `deferrable = ["*", "b"]` + "\n",
			[]string{`c.toml:4:15: upstreams[0].deferrable[0]: "*" (every tool) must be the only element`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseT(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, ps); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
