package guard

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A Rule is one check of the poisoning detector: an id (stable, shown in
// verdicts and counted), a regular expression (RE2 syntax, matched against
// the description once hidden Unicode is removed, and against text
// smuggled in tag characters) and an explanation for the operator.
type Rule struct {
	ID      string
	Pattern string
	Explain string
}

// RuleHiddenUnicode is the id of the built-in check that fires when a
// description carries hidden Unicode or terminal escapes ([Normalize]
// removes something other than invalid bytes).
const RuleHiddenUnicode = "hidden-unicode"

// RulesVersion names the built-in rule set; it changes whenever a rule
// does, so that a verdict can say which set judged it.
const RulesVersion = "2026-12-07.2"

// BuiltinRules returns the built-in rules (a fresh copy). The hidden
// Unicode check ([RuleHiddenUnicode]) is not a pattern and always runs.
func BuiltinRules() []Rule {
	return []Rule{
		{ID: "directive-tag",
			Pattern: `(?i)<\s*/?\s*(important|system|sys|instructions?|secret|hidden|admin|critical|assistant|ai|note_to_(ai|assistant|model))\s*>`,
			Explain: "a tag such as <IMPORTANT> or <system> addresses hidden directives to the model"},
		{ID: "ignore-instructions",
			Pattern: `(?i)\b(ignore|disregard|forget|override|bypass)\s+(all\s+|any\s+|of\s+)?(the\s+|your\s+|my\s+)?(previous|prior|above|earlier|preceding|former|system|your|all|other)\s+(instructions|directions|rules|prompts?|guidelines|directives|constraints)\b`,
			Explain: "asks the model to ignore its instructions"},
		{ID: "sensitive-file",
			Pattern: `(?i)(~/\.ssh|\.ssh/|\bid_(rsa|ed25519|ecdsa|dsa)\b|/etc/(passwd|shadow|sudoers)\b|(^|[\s'"` + "`" + `(/])\.env\b|\.aws/credentials|~/\.cursor|\bmcp\.json\b|claude_desktop_config\.json|\.npmrc\b|\.pypirc\b|\.netrc\b|\.git-credentials|\.kube/config|\bcredentials\.json\b|\.docker/config\.json)`,
			Explain: "names a file that holds keys, credentials or the client's own configuration"},
		{ID: "secret-request",
			Pattern: `(?i)\b(read|send|share|include|pass|provide|extract|collect|gather|upload|forward|append|attach|print|reveal|output|leak|copy|dump)\b[^.\n]{0,60}\b(private keys?|ssh keys?|api keys?|secret keys?|passwords?|credentials|access tokens?|environment variables|env vars|system prompt)\b|\b(api keys?|tokens|passwords|secrets|credentials)\b[^.\n]{0,60}\b(append|add|include|pass|send|attach|forward)\s+(them|it)\b`,
			Explain: "asks the model to read or pass on secrets"},
		{ID: "conversation-history",
			Pattern: `(?i)\b(conversation|chat)\s+(history|log|transcript)\b|\bfull\s+list\s+of\s+(the\s+)?(last|previous|recent)\s+messages\b`,
			Explain: "asks for the conversation's history, which carries what the user said to other tools"},
		{ID: "parameter-smuggling",
			Pattern: `(?i)\bside\s?note\b|\bas\s+(a\s+|the\s+)?['"` + "`" + `]?note['"` + "`" + `]?(\s|$|[.,;])|\b(pass|put|include|send|add|append|attach)\b[^.\n]{0,60}\b(in|into|as|to)\s+(the\s+)?['"` + "`" + `]?[A-Za-z_][\w-]*['"` + "`" + `]?\s+(parameter|argument|field)\b|\bpassed\s+in\s+the\s+\w+\s+(parameter|argument|field)\b`,
			Explain: "asks the model to slip data into a parameter (\"as a note\", \"in the 'x' argument\")"},
		{ID: "tool-hijack",
			Pattern: `(?i)\b(before|prior\s+to|instead\s+of)\s+(using|calling|invoking|running|executing)\s+(any|every|all|another|other|the\s+other)\b|\b(first|always|silently|also|instead)\s+(call|invoke|run|execute)\s+(the\s+|this\s+)?['"` + "`" + `]?[a-z0-9]+_[a-z0-9_]+\b|\bwhen(ever)?\b[^.\n]{0,40}\b[a-z0-9]+_[a-z0-9_]+(\s+tool)?\s+(is|are)\s+(invoked|used|called)\b|\bwhenever\s+you\s+(execute|run|call|use|invoke)\b|\bserver'?s\s+['"` + "`" + `]?[a-z0-9]+_[a-z0-9_]+['"` + "`" + `]?\s+tool\b|\b(also\s+present|other\s+server'?s?)\b[^.\n]{0,30}\btool\b`,
			Explain: "tells the model how to use other tools, or to call tools first or instead (line jumping, shadowing)"},
		{ID: "conceal",
			Pattern: `(?i)\b(do\s+not|don'?t|never|without)\s+(tell|telling|inform|informing|notify|notifying|mention|mentioning|alert|alerting|reveal|revealing|disclose|disclosing)\b|\bno\s+need\s+to\s+(tell|inform|notify|mention)\b|\b(silently|secretly|covertly)\s+(call|send|add|include|append|read|forward|run|execute|use|copy|upload|invoke)\b|\b(user|human)\s+(does|do|should|must)\s*(not|n't)\s+(need\s+to\s+)?(know|see|be\s+told|notice)\b`,
			Explain: "asks the model to keep something from the user"},
		{ID: "shell-command",
			Pattern: `(?i)\b(curl|wget)\b[^\n|]{0,200}\|\s*(sudo\s+)?(ba|z)?sh\b|\bchmod\s+-R\b|\brm\s+-rf\s+[~/]`,
			Explain: "carries a shell command for the model to run"},
		{ID: "redirect-recipient",
			Pattern: `(?i)\b(change|set|replace)\s+the\s+recipient\b|\b(bcc|cc)\s*:\s*\S+@|\bsend\s+all\s+(e-?mails|messages)\s+to\b`,
			Explain: "redirects messages another tool sends"},
	}
}

// A compiledRule is a Rule with its pattern compiled.
type compiledRule struct {
	Rule
	re *regexp.Regexp
}

// A Detector judges descriptions against its rules. Build it once with
// [NewDetector]; it is safe for concurrent use.
type Detector struct {
	rules   []compiledRule
	version string
	// noShadowing: the operator's rule file disabled [RuleShadowing].
	noShadowing bool
}

// Shadowing reports whether the shadowing check ([RuleShadowing], run by
// the gateway with [Shadows]) is in force.
func (d *Detector) Shadowing() bool { return !d.noShadowing }

// NewDetector compiles rules (nil: [BuiltinRules]). Ids must be unique
// and not empty, and every pattern must compile.
func NewDetector(rules []Rule) (*Detector, error) {
	if rules == nil {
		rules = BuiltinRules()
	}
	d := &Detector{version: RulesVersion}
	seen := map[string]bool{RuleHiddenUnicode: true}
	for _, r := range rules {
		if r.ID == "" {
			return nil, fmt.Errorf("guard: a rule without an id")
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("guard: rule %q given twice", r.ID)
		}
		seen[r.ID] = true
		re, err := regexp.Compile(r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("guard: rule %q: %w", r.ID, err)
		}
		d.rules = append(d.rules, compiledRule{Rule: r, re: re})
	}
	return d, nil
}

// Version names the rule set the detector judges with (see
// [RuleSet.Version]); it is [RulesVersion] for a detector built by
// [NewDetector] alone.
func (d *Detector) Version() string { return d.version }

// A Finding is one rule that fired, with the text it matched (clipped).
type Finding struct {
	Rule    string `json:"rule"`
	Explain string `json:"explain"`
	Match   string `json:"match,omitempty"`
}

// A Verdict is the detector's judgement of one text: the rules that fired
// (none: clean), and the text as a model should read it (normalised).
type Verdict struct {
	Findings []Finding
	// Clean is the text with hidden Unicode and escapes removed.
	Clean string
	// Removed counts what normalisation removed.
	Removed Counts
}

// Flagged reports whether any rule fired.
func (v Verdict) Flagged() bool { return len(v.Findings) > 0 }

// Rules lists the ids of the rules that fired, in rule order.
func (v Verdict) Rules() []string {
	ids := make([]string, len(v.Findings))
	for i, f := range v.Findings {
		ids[i] = f.Rule
	}
	return ids
}

// Scan judges text: hidden Unicode first, then every rule against the
// normalised text and against what tag characters spelled, if any.
func (d *Detector) Scan(text string) Verdict {
	v := Verdict{}
	v.Clean, v.Removed = Normalize(text)
	hidden := 0
	for k, n := range v.Removed {
		if k != KindInvalid {
			hidden += n
		}
	}
	if hidden > 0 {
		v.Findings = append(v.Findings, Finding{Rule: RuleHiddenUnicode,
			Explain: "hidden Unicode or terminal escapes: " + describeCounts(v.Removed)})
	}
	texts := []string{v.Clean}
	if s := smuggled(text); s != "" {
		texts = append(texts, s)
	}
	for _, r := range d.rules {
		for _, t := range texts {
			if m := r.re.FindString(t); m != "" {
				v.Findings = append(v.Findings, Finding{Rule: r.ID, Explain: r.Explain, Match: clip(strings.TrimSpace(m), 80)})
				break
			}
		}
	}
	return v
}

// smuggled is the ASCII text spelled by tag characters in s ("" if none):
// the hidden payload of ASCII smuggling.
func smuggled(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0xE0020 && r <= 0xE007E {
			b.WriteByte(byte(r - 0xE0000))
		}
	}
	return b.String()
}

func describeCounts(c Counts) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, c[k])
	}
	return strings.Join(parts, ", ")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
