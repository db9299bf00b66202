package config

import (
	"errors"
	"slices"
	"strings"

	"github.com/mcpedge/mcpedge/internal/guard"
)

// Guard is the scanning of what a model reads from upstreams (toml
// [guard], and per upstream [upstreams.guard] with the same keys, each
// overriding the [guard] value it names); see docs/guardrails.md,
// "Scanning". The zero value scans nothing: every field's zero means off.
type Guard struct {
	// Results is what happens to tools/call and prompts/get results:
	// GuardResultsRedact normalises their text (hidden Unicode, terminal
	// escapes) and redacts secrets; "" or GuardOff leaves them alone
	// (toml "results", default "off").
	Results string
	// PersonalData also redacts e-mail addresses, phone numbers and card
	// numbers in results when Results redacts (toml "personal_data",
	// default false).
	PersonalData bool
	// Descriptions is what happens to tool and prompt descriptions when
	// the catalog is fetched: GuardFlag normalises them and marks those
	// the poisoning detector flags (a warning line and _meta
	// "io.mcpedge/guard"), GuardQuarantine normalises them and withholds
	// flagged items, "" or GuardOff leaves them alone (toml
	// "descriptions", default "off").
	Descriptions string
	// RulesFile is the operator's rule file for the poisoning detector
	// (toml "rules" in [guard] only; relative to the configuration file's
	// directory), "" for the built-in rules alone.
	RulesFile string
	// Rules is the rule set in force, read from RulesFile and checked
	// when the configuration is loaded: nil means the built-in rules. It
	// is set in [Config.Guard], and in an upstream's settings when that
	// upstream scans descriptions (so that a change of the rules fetches
	// its catalog again: the fingerprint holds the set's digest).
	Rules *guard.RuleSet
}

// Values of [Guard] fields.
const (
	GuardOff           = "off"
	GuardResultsRedact = "redact"
	GuardFlag          = "flag"
	GuardQuarantine    = "quarantine"
)

// RedactsResults reports whether results are scanned.
func (g Guard) RedactsResults() bool { return g.Results == GuardResultsRedact }

// ScansDescriptions reports whether descriptions are scanned.
func (g Guard) ScansDescriptions() bool {
	return g.Descriptions == GuardFlag || g.Descriptions == GuardQuarantine
}

// GuardOverride is an upstream's [upstreams.guard] table as written: nil
// fields take the [guard] value.
type GuardOverride struct {
	Results      *string
	PersonalData *bool
	Descriptions *string
}

var guardKeys = []string{"results", "personal_data", "descriptions"}

// guardTopKeys are guardKeys and those only [guard] takes.
var guardTopKeys = append(slices.Clone(guardKeys), "rules")

// decodeGuardTable reads a [guard] or [upstreams.guard] table into o,
// checking values where they stand.
// With rules set (for [guard]), it also reads "rules" into it and reports
// whether the key is there.
func (d *decoder) decodeGuardTable(t *table, o *GuardOverride, rules *string) (hasRules bool) {
	known := guardKeys
	if rules != nil {
		known = guardTopKeys
		hasRules = t.str("rules", rules)
	}
	var s string
	if t.str("results", &s) {
		if s != GuardResultsRedact && s != GuardOff {
			l := t.loc("results")
			d.add(l.pos, l.field, "must be %q or %q, got %q", GuardResultsRedact, GuardOff, truncate(s, 64))
		}
		o.Results = &s
	}
	var b bool
	if t.boolean("personal_data", &b) {
		o.PersonalData = &b
	}
	var desc string
	if t.str("descriptions", &desc) {
		if desc != GuardFlag && desc != GuardQuarantine && desc != GuardOff {
			l := t.loc("descriptions")
			d.add(l.pos, l.field, "must be %q, %q or %q, got %q", GuardFlag, GuardQuarantine, GuardOff, truncate(desc, 64))
		}
		o.Descriptions = &desc
	}
	t.unknown(known)
	return hasRules
}

// decodeUpstreamGuard reads an upstream's [upstreams.guard] table.
func (d *decoder) decodeUpstreamGuard(t *table, u *Upstream) {
	if gt := d.subTable(t, "guard"); gt != nil {
		d.decodeGuardTable(gt, &u.GuardOverride, nil)
	}
}

// decodeGuard reads [guard] and resolves every upstream's (and target's)
// effective settings: the upstream's own value where its table names
// one, else [guard]'s.
func (d *decoder) decodeGuard(top *table, c *Config) {
	var o GuardOverride
	var rules *guard.RuleSet
	var rulesFile string
	if gt := d.subTable(top, "guard"); gt != nil {
		if d.decodeGuardTable(gt, &o, &rulesFile) {
			rules = d.loadGuardRules(gt.loc("rules"), rulesFile)
		}
	}
	c.Guard = o.apply(Guard{})
	c.Guard.RulesFile, c.Guard.Rules = rulesFile, rules
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		u.Guard = u.GuardOverride.apply(Guard{Results: c.Guard.Results, PersonalData: c.Guard.PersonalData, Descriptions: c.Guard.Descriptions})
		if u.Guard.ScansDescriptions() {
			u.Guard.RulesFile, u.Guard.Rules = rulesFile, rules
		}
		for j := range u.Targets {
			u.Targets[j].Guard = u.Guard
		}
	}
}

// apply returns base with o's fields set.
func (o GuardOverride) apply(base Guard) Guard {
	if o.Results != nil {
		base.Results = *o.Results
	}
	if o.PersonalData != nil {
		base.PersonalData = *o.PersonalData
	}
	if o.Descriptions != nil {
		base.Descriptions = *o.Descriptions
	}
	if base.Results == GuardOff {
		base.Results = ""
	}
	if base.Descriptions == GuardOff {
		base.Descriptions = ""
	}
	return base
}

// loadGuardRules reads and checks the operator's rule file named at l
// (relative to the configuration file's directory), reporting each of
// its problems with the rule file's line and the rule's id.
func (d *decoder) loadGuardRules(l loc, file string) *guard.RuleSet {
	if strings.TrimSpace(file) == "" {
		d.add(l.pos, l.field, "must name a rule file (or leave the key out for the built-in rules)")
		return nil
	}
	path := resolvePath(d.base, file)
	rf, err := guard.LoadRuleFile(path)
	if err != nil {
		var fe *guard.RuleFileError
		if errors.As(err, &fe) {
			for _, p := range fe.Problems {
				one := &guard.RuleFileError{Path: fe.Path, Problems: []guard.RuleProblem{p}}
				d.add(l.pos, l.field, "rule file %s", one.Error())
			}
			return nil
		}
		d.add(l.pos, l.field, "rule file: %v", err)
		return nil
	}
	rs, err := guard.NewRuleSet(rf)
	if err != nil {
		d.add(l.pos, l.field, "rule file %s: %v", path, err)
		return nil
	}
	return rs
}
