package guard

import (
	"errors"
	"strings"
	"testing"
)

const goodRules = `version = "acme-1"
disable = ["conversation-history"]

[[rule]]
id = "acme-host"
pattern = '(?i)\binternal\.acme\.example\b'
explain = "names an internal host"
match = ["go to internal.acme.example now"]
no_match = ["acme.example"]
`

func TestParseRuleFile(t *testing.T) {
	rf, err := ParseRuleFile("r.toml", []byte(goodRules))
	if err != nil {
		t.Fatal(err)
	}
	if rf.Version != "acme-1" || len(rf.Rules) != 1 || rf.Rules[0].ID != "acme-host" || rf.Lines[0] != 4 {
		t.Fatalf("parsed %+v", rf)
	}
	rs, err := NewRuleSet(rf)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Version != RulesVersion+"+acme-1" || rs.Detector().Version() != rs.Version {
		t.Errorf("version %q / %q", rs.Version, rs.Detector().Version())
	}
	v := rs.Detector().Scan("Reads the conversation history from internal.acme.example.")
	if got := strings.Join(v.Rules(), ","); got != "acme-host" {
		t.Errorf("rules fired = %q, want acme-host only (conversation-history is disabled)", got)
	}
	builtin, _ := NewRuleSet(nil)
	if builtin.Digest == rs.Digest || builtin.Version != RulesVersion {
		t.Errorf("digests %s %s, version %s", builtin.Digest, rs.Digest, builtin.Version)
	}
	again, _ := NewRuleSet(rf)
	if again.Digest != rs.Digest {
		t.Error("the digest of the same rules differs")
	}
}

func TestParseRuleFileProblems(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // each must appear in the error
	}{
		{"syntax", "version = \"x\"\n[[rule]\n", []string{"r.toml:2:"}},
		{"unknown key", "version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"b\"\nexplain = \"c\"\nseverity = 1\n", []string{"r.toml:6:", "unknown key rule.severity"}},
		{"no version", "[[rule]]\nid = \"a\"\npattern = \"b\"\nexplain = \"c\"\n", []string{"no version"}},
		{"bad id and pattern", "version = \"x\"\n\n[[rule]]\nid = \"Bad ID\"\npattern = \"(a\"\nexplain = \"c\"\n", []string{`r.toml:3: rule "Bad ID": the id must`, `r.toml:3: rule "Bad ID": pattern: error parsing regexp`}},
		{"empty match", "version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"x*\"\nexplain = \"c\"\n", []string{`rule "a": pattern matches empty text`}},
		{"builtin id", "version = \"x\"\n[[rule]]\nid = \"directive-tag\"\npattern = \"x\"\nexplain = \"c\"\n", []string{`rule "directive-tag": the id of a built-in rule`}},
		{"twice", "version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"x\"\nexplain = \"c\"\n[[rule]]\nid = \"a\"\npattern = \"y\"\nexplain = \"c\"\n", []string{`r.toml:6: rule "a": given twice (first on line 2)`}},
		{"no explain", "version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"x\"\n", []string{`rule "a": no explain`}},
		{"examples", "version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"x\"\nexplain = \"c\"\nmatch = [\"y\"]\nno_match = [\"xx\"]\n", []string{`does not match its example "y"`, `matches its no_match example "xx"`}},
		{"disable unknown", "version = \"x\"\ndisable = [\"nope\", \"hidden-unicode\"]\n", []string{`"nope" is not a built-in rule`, `"hidden-unicode" cannot be turned off`}},
		{"too large", "version = \"x\"\n#" + strings.Repeat("a", maxRuleFile), []string{"larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRuleFile("r.toml", []byte(tt.file))
			var fe *RuleFileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *RuleFileError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

// FuzzParseRuleFile: a rule file is outside input (an operator's file);
// whatever it holds, parsing returns rules or a *RuleFileError, and the
// rules it accepts compile into a rule set.
func FuzzParseRuleFile(f *testing.F) {
	f.Add([]byte(goodRules))
	f.Add([]byte("version = \"x\"\n[[rule]]\nid = \"a\"\npattern = \"(a\"\n"))
	f.Add([]byte("rule = [{id = \"a\", pattern = \"b\", explain = \"c\"}]\nversion = \"v\""))
	f.Add([]byte("[[rule]]\n[[rule]]\n[rule.x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rf, err := ParseRuleFile("f.toml", data)
		if err != nil {
			var fe *RuleFileError
			if !errors.As(err, &fe) || len(fe.Problems) == 0 {
				t.Fatalf("error %v is not a RuleFileError with problems", err)
			}
			return
		}
		if _, err := NewRuleSet(rf); err != nil {
			t.Fatalf("accepted rules do not build: %v", err)
		}
	})
}
