package config

import (
	"strings"
	"testing"
)

func TestGuardConfig(t *testing.T) {
	up := func(extra string) string {
		return "[[upstreams]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\n" + extra + "\n[[upstreams]]\nname = \"b\"\nurl = \"https://b.example/mcp\"\n"
	}
	tests := []struct {
		name   string
		toml   string
		a, b   Guard
		errSub string
	}{
		{name: "default off", toml: up("")},
		{name: "global", toml: "[guard]\nresults = \"redact\"\ndescriptions = \"flag\"\n" + up(""),
			a: Guard{Results: "redact", Descriptions: "flag"}, b: Guard{Results: "redact", Descriptions: "flag"}},
		{name: "override", toml: "[guard]\nresults = \"redact\"\ndescriptions = \"quarantine\"\n" + up("[upstreams.guard]\nresults = \"off\"\npersonal_data = true\n"),
			a: Guard{PersonalData: true, Descriptions: "quarantine"}, b: Guard{Results: "redact", Descriptions: "quarantine"}},
		{name: "bad results", toml: "[guard]\nresults = \"yes\"\n" + up(""), errSub: "guard.results"},
		{name: "bad descriptions", toml: up("[upstreams.guard]\ndescriptions = \"hide\"\n"), errSub: "descriptions"},
		{name: "unknown key", toml: "[guard]\narguments = true\n" + up(""), errSub: "arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tt.toml))
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Upstreams[0].Guard != tt.a || c.Upstreams[1].Guard != tt.b {
				t.Errorf("guard = %+v / %+v, want %+v / %+v", c.Upstreams[0].Guard, c.Upstreams[1].Guard, tt.a, tt.b)
			}
		})
	}
	plain, _ := Parse("t.toml", []byte(up("")))
	guarded, _ := Parse("t.toml", []byte("[guard]\ndescriptions = \"flag\"\n"+up("")))
	if plain.Upstreams[0].Fingerprint() == guarded.Upstreams[0].Fingerprint() {
		t.Error("a change of descriptions does not change the fingerprint (the catalog would not be fetched again)")
	}
	if keys := RestartKeys(plain, guarded); len(keys) != 0 {
		t.Errorf("[guard] needs a restart: %v", keys)
	}
}
