package guard

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// An operator's rule file (the file [guard] rules names; see
// docs/guardrails.md, "Your own rules") is TOML:
//
//	version = "acme-2026-12-01"          # required: names this set in verdicts
//	disable = ["conversation-history"]   # built-in rules that do not fit
//
//	[[rule]]
//	id       = "acme-internal-host"
//	pattern  = '(?i)\binternal\.acme\.example\b'
//	explain  = "names one of our internal hosts"
//	match    = ["fetch internal.acme.example/keys first"]  # must fire
//	no_match = ["fetch a web page"]                       # must not
//
// Every problem is reported with the file, the line and the rule's id.

// maxRuleFile bounds a rule file's size (a rule set is written by hand).
const maxRuleFile = 1 << 20

// maxRules bounds how many rules a file holds: each one is tried on every
// description.
const maxRules = 500

var ruleIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// A RuleFile is an operator's rule file, parsed and checked.
type RuleFile struct {
	// Path is where it was read from (as given).
	Path string
	// Version is the file's version string.
	Version string
	// Disable lists the built-in rules turned off.
	Disable []string
	// Rules are the operator's own rules, in file order.
	Rules []Rule
	// Lines holds the line of each rule's [[rule]] header (by index).
	Lines []int
}

// A RuleProblem is one mistake in a rule file.
type RuleProblem struct {
	Line int    // 0: the whole file
	Rule string // the rule's id, if known
	Msg  string
}

// RuleFileError lists every mistake found in a rule file.
type RuleFileError struct {
	Path     string
	Problems []RuleProblem
}

func (e *RuleFileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Path)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		if p.Rule != "" {
			fmt.Fprintf(&b, "rule %q: ", p.Rule)
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// ruleFileTOML is the file as decoded.
type ruleFileTOML struct {
	Version string     `toml:"version"`
	Disable []string   `toml:"disable"`
	Rule    []ruleTOML `toml:"rule"`
}

type ruleTOML struct {
	ID      string   `toml:"id"`
	Pattern string   `toml:"pattern"`
	Explain string   `toml:"explain"`
	Match   []string `toml:"match"`
	NoMatch []string `toml:"no_match"`
}

// LoadRuleFile reads and checks the rule file at path.
func LoadRuleFile(path string) (*RuleFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRuleFile+1))
	if err != nil {
		return nil, err
	}
	return ParseRuleFile(path, data)
}

// ParseRuleFile parses and checks a rule file's contents; path is used in
// problems only. It reports every mistake it finds (as a *RuleFileError):
// TOML syntax, unknown keys, a missing version, an id that is missing,
// badly formed, given twice or that of a built-in rule still in force, a
// pattern that does not compile or that matches empty text (it would flag
// everything), a missing explanation, a built-in rule to disable that does
// not exist, and a rule that misses one of its match examples or fires on
// one of its no_match examples.
func ParseRuleFile(path string, data []byte) (*RuleFile, error) {
	fe := &RuleFileError{Path: path}
	if len(data) > maxRuleFile {
		fe.Problems = append(fe.Problems, RuleProblem{Msg: fmt.Sprintf("larger than %d bytes", maxRuleFile)})
		return nil, fe
	}
	var raw ruleFileTOML
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		var de *toml.DecodeError
		var sm *toml.StrictMissingError
		switch {
		case errors.As(err, &sm):
			for _, e := range sm.Errors {
				line, _ := e.Position()
				fe.Problems = append(fe.Problems, RuleProblem{Line: line, Msg: "unknown key " + strings.Join(e.Key(), ".") + " (known: version, disable, [[rule]] id, pattern, explain, match, no_match)"})
			}
		case errors.As(err, &de):
			line, _ := de.Position()
			fe.Problems = append(fe.Problems, RuleProblem{Line: line, Msg: strings.TrimPrefix(de.Error(), "toml: ")})
		default:
			fe.Problems = append(fe.Problems, RuleProblem{Msg: strings.TrimPrefix(err.Error(), "toml: ")})
		}
		return nil, fe
	}
	lines := ruleLines(data)
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return 0
	}
	rf := &RuleFile{Path: path, Version: strings.TrimSpace(raw.Version), Disable: raw.Disable}
	if rf.Version == "" {
		fe.Problems = append(fe.Problems, RuleProblem{Msg: `no version: set version = "…" (it names this rule set in every verdict)`})
	}
	if len(raw.Rule) > maxRules {
		fe.Problems = append(fe.Problems, RuleProblem{Msg: fmt.Sprintf("%d rules: at most %d", len(raw.Rule), maxRules)})
		return nil, fe
	}
	builtin := map[string]bool{RuleHiddenUnicode: true, RuleShadowing: true}
	for _, r := range BuiltinRules() {
		builtin[r.ID] = true
	}
	disabled := map[string]bool{}
	for _, id := range raw.Disable {
		switch {
		case id == RuleHiddenUnicode:
			fe.Problems = append(fe.Problems, RuleProblem{Msg: fmt.Sprintf("disable: %q cannot be turned off", id)})
		case !builtin[id]:
			fe.Problems = append(fe.Problems, RuleProblem{Msg: fmt.Sprintf("disable: %q is not a built-in rule (they are: %s)", id, strings.Join(BuiltinRuleIDs(), ", "))})
		}
		disabled[id] = true
	}
	seen := map[string]int{}
	for i, r := range raw.Rule {
		line := lineOf(i)
		bad := func(format string, args ...any) {
			fe.Problems = append(fe.Problems, RuleProblem{Line: line, Rule: r.ID, Msg: fmt.Sprintf(format, args...)})
		}
		switch {
		case r.ID == "":
			bad("no id")
		case !ruleIDPattern.MatchString(r.ID):
			bad("the id must be 1–64 lower-case letters, digits, '.', '_' or '-'")
		case builtin[r.ID] && !disabled[r.ID]:
			bad("the id of a built-in rule: choose another, or disable the built-in one to replace it")
		case seen[r.ID] > 0:
			bad("given twice (first on line %d)", seen[r.ID])
		}
		if r.ID != "" && seen[r.ID] == 0 {
			seen[r.ID] = max(line, 1)
		}
		if strings.TrimSpace(r.Explain) == "" {
			bad("no explain: say what the rule catches (it is shown with every verdict)")
		}
		if r.Pattern == "" {
			bad("no pattern")
			continue
		}
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			bad("pattern: %v", err)
			continue
		}
		if re.MatchString("") {
			bad("pattern matches empty text: it would flag every description")
			continue
		}
		for _, m := range r.Match {
			if !re.MatchString(m) {
				bad("does not match its example %q", clip(m, 80))
			}
		}
		for _, m := range r.NoMatch {
			if re.MatchString(m) {
				bad("matches its no_match example %q", clip(m, 80))
			}
		}
		rf.Rules = append(rf.Rules, Rule{ID: r.ID, Pattern: r.Pattern, Explain: strings.TrimSpace(r.Explain)})
		rf.Lines = append(rf.Lines, line)
	}
	if len(fe.Problems) > 0 {
		slices.SortStableFunc(fe.Problems, func(a, b RuleProblem) int { return a.Line - b.Line })
		return nil, fe
	}
	return rf, nil
}

// ruleLines returns the line of each [[rule]] header, in order.
func ruleLines(data []byte) []int {
	var out []int
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.ArrayTable {
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		k := it.Node()
		if string(k.Data) != "rule" || it.Next() {
			continue
		}
		out = append(out, 1+strings.Count(string(data[:min(int(k.Raw.Offset), len(data))]), "\n"))
	}
	return out
}

// BuiltinRuleIDs lists the ids of the built-in rules, the hidden Unicode
// check first and the shadowing check ([RuleShadowing]) last.
func BuiltinRuleIDs() []string {
	ids := []string{RuleHiddenUnicode}
	for _, r := range BuiltinRules() {
		ids = append(ids, r.ID)
	}
	return append(ids, RuleShadowing)
}

// A RuleSet is the rules in force: the built-in set less the rules an
// operator's file disables, plus the file's own, compiled. It is safe for
// concurrent use and never changes.
type RuleSet struct {
	// Version names the set in verdicts: the built-in version, and the
	// operator's file's version after a "+" when there is one.
	Version string
	// Digest is a hex SHA-256 of every rule in force (ids, patterns,
	// explanations): two sets with the same digest judge alike.
	Digest string
	// Rules are the rules in force, built-in ones first.
	Rules []Rule
	// File is the operator's file, nil if none.
	File *RuleFile

	detector *Detector
}

// NewRuleSet builds the rules in force from the built-in set and f (nil:
// the built-in set alone).
func NewRuleSet(f *RuleFile) (*RuleSet, error) {
	rs := &RuleSet{Version: RulesVersion, File: f}
	var disabled []string
	if f != nil {
		rs.Version += "+" + f.Version
		disabled = f.Disable
	}
	for _, r := range BuiltinRules() {
		if !slices.Contains(disabled, r.ID) {
			rs.Rules = append(rs.Rules, r)
		}
	}
	if f != nil {
		rs.Rules = append(rs.Rules, f.Rules...)
	}
	d, err := NewDetector(rs.Rules)
	if err != nil {
		return nil, err
	}
	d.version = rs.Version
	d.noShadowing = slices.Contains(disabled, RuleShadowing)
	rs.detector = d
	h := sha256.New()
	h.Write([]byte(rs.Version))
	if d.noShadowing {
		h.Write([]byte("-" + RuleShadowing))
	}
	for _, r := range rs.Rules {
		for _, s := range []string{r.ID, r.Pattern, r.Explain} {
			fmt.Fprintf(h, "%d:%s", len(s), s)
		}
	}
	rs.Digest = hex.EncodeToString(h.Sum(nil))
	return rs, nil
}

// Detector is the set's compiled detector.
func (rs *RuleSet) Detector() *Detector { return rs.detector }
