package config

import (
	"os"
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

func TestGuardRulesFile(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/rules.toml"
	if err := os.WriteFile(good, []byte("version = \"acme-1\"\n[[rule]]\nid = \"acme-host\"\npattern = 'internal\\.acme'\nexplain = \"names an internal host\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := dir + "/bad.toml"
	if err := os.WriteFile(bad, []byte("version = \"x\"\n\n[[rule]]\nid = \"acme-host\"\npattern = '(a'\nexplain = \"e\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ups := "[[upstreams]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\n[upstreams.guard]\ndescriptions = \"flag\"\n[[upstreams]]\nname = \"b\"\nurl = \"https://b.example/mcp\"\n"
	cfgFile := dir + "/mcpedge.toml"
	if err := os.WriteFile(cfgFile, []byte("[guard]\nrules = \"rules.toml\"\n"+ups), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if c.Guard.Rules == nil || c.Guard.Rules.Version != "2026-12-07.1+acme-1" && !strings.HasSuffix(c.Guard.Rules.Version, "+acme-1") {
		t.Fatalf("rules = %+v", c.Guard.Rules)
	}
	if c.Upstreams[0].Guard.Rules != c.Guard.Rules || c.Upstreams[1].Guard.Rules != nil {
		t.Errorf("per upstream rules: a %v, b %v (b does not scan descriptions)", c.Upstreams[0].Guard.Rules, c.Upstreams[1].Guard.Rules)
	}
	plain, err := Parse("t.toml", []byte(ups))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Upstreams[0].Fingerprint() == c.Upstreams[0].Fingerprint() {
		t.Error("the rules are not in the fingerprint: a change of them would not screen the catalog again")
	}
	if plain.Upstreams[1].Fingerprint() != c.Upstreams[1].Fingerprint() {
		t.Error("an upstream that does not scan descriptions changed fingerprint with the rules")
	}

	for _, tt := range []struct{ name, toml, want string }{
		{"bad rule", "[guard]\nrules = " + quoteTOML(bad) + "\n" + ups, bad + `:3: rule "acme-host": pattern: error parsing regexp`},
		{"missing", "[guard]\nrules = " + quoteTOML(dir+"/none.toml") + "\n" + ups, "rule file: open"},
		{"empty", "[guard]\nrules = \"\"\n" + ups, "must name a rule file"},
		{"per upstream", "[[upstreams]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\n[upstreams.guard]\nrules = \"x.toml\"\n", "rules"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tt.toml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "t.toml:") {
				t.Errorf("err %v does not name the configuration's line", err)
			}
		})
	}
}

func quoteTOML(s string) string { return "'" + s + "'" }
