package guard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Sample formats, as [CheckSample] recognises them.
const (
	// SampleDefinitions: tools, prompts, resources or resource templates
	// (a tools/list result, {"tools": […], "prompts": […], …}, a JSON-RPC
	// response carrying one, or a bare array of definitions). Each is
	// judged by the poisoning detector, as the description guard does.
	SampleDefinitions = "definitions"
	// SampleResult: a tools/call, prompts/get or resources/read result, or
	// a sampling or elicitation request's params (or a JSON-RPC message
	// carrying one). Its text is normalised and redacted, as the results
	// guard does.
	SampleResult = "result"
	// SampleText: anything else, judged as one description and scanned as
	// one result text.
	SampleText = "text"
)

// A SampleItem is the verdict on one item of a sample.
type SampleItem struct {
	// Kind is tool, prompt, resource, template, result or text.
	Kind string `json:"kind"`
	Name string `json:"name,omitempty"`
	// Flagged: a rule fired, or (for a result) something would be removed
	// or redacted.
	Flagged bool `json:"flagged"`
	// Findings are the detector's rules that fired, with what they matched.
	Findings []Finding `json:"findings,omitempty"`
	// Removed counts what the results guard would remove or redact, by
	// kind (results and text only).
	Removed Counts `json:"removed,omitempty"`
}

// A SampleReport is what [CheckSample] found.
type SampleReport struct {
	Format       string       `json:"format"`
	RulesVersion string       `json:"rules_version"`
	Items        []SampleItem `json:"items"`
	Flagged      int          `json:"flagged"`
}

// CheckSample runs the rule set (and the redactor) against a sample, the
// way the gateway would on what an upstream says (mcpedge guard test): it
// tells the sample's format from its contents (see [SampleDefinitions],
// [SampleResult], [SampleText]) and returns a verdict per item. Malformed
// JSON is judged as text.
func CheckSample(data []byte, rs *RuleSet, red *Redactor) *SampleReport {
	d := rs.Detector()
	rep := &SampleReport{RulesVersion: rs.Version, Items: []SampleItem{}}
	var v any
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') || json.Unmarshal(trimmed, &v) != nil {
		rep.Format = SampleText
		s := string(data)
		verdict := d.Scan(s)
		_, removed := scanResultText(s, red)
		rep.add(SampleItem{Kind: "text", Findings: verdict.Findings, Removed: removed})
		return rep
	}
	v = unwrapRPC(v)
	if defs := definitions(v); defs != nil {
		rep.Format = SampleDefinitions
		for _, def := range defs {
			verdict := d.Scan(strings.Join(def.texts, "\n"))
			rep.add(SampleItem{Kind: def.kind, Name: def.name, Findings: verdict.Findings})
		}
		return rep
	}
	rep.Format = SampleResult
	var removed Counts
	for _, t := range ResultTexts(v, nil) {
		_, c := scanResultText(t, red)
		removed.Merge(c)
	}
	rep.add(SampleItem{Kind: "result", Removed: removed})
	return rep
}

func (rep *SampleReport) add(it SampleItem) {
	it.Flagged = len(it.Findings) > 0 || it.Removed.Total() > 0
	if it.Flagged {
		rep.Flagged++
	}
	rep.Items = append(rep.Items, it)
}

// scanResultText is what the results guard does to one text.
func scanResultText(s string, red *Redactor) (string, Counts) {
	out, n := Normalize(s)
	out, r := red.Redact(out)
	n.Merge(r)
	return out, n
}

// unwrapRPC returns a JSON-RPC message's result or params, else v.
func unwrapRPC(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if _, rpc := m["jsonrpc"]; !rpc {
		return v
	}
	if r, ok := m["result"]; ok {
		return r
	}
	if p, ok := m["params"]; ok {
		return p
	}
	return v
}

type definition struct {
	kind, name string
	texts      []string
}

// definitions returns the definitions in v, or nil when v holds none.
func definitions(v any) []definition {
	var out []definition
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if d, ok := oneDefinition(guessKind(m), m); ok {
					out = append(out, d)
				}
			}
		}
	case map[string]any:
		for _, list := range []struct{ key, kind string }{{"tools", "tool"}, {"prompts", "prompt"}, {"resourceTemplates", "template"}, {"resources", "resource"}} {
			arr, _ := x[list.key].([]any)
			for _, e := range arr {
				if m, ok := e.(map[string]any); ok {
					if d, ok := oneDefinition(list.kind, m); ok {
						out = append(out, d)
					}
				}
			}
		}
	}
	return out
}

// guessKind tells a bare definition's kind from its members.
func guessKind(m map[string]any) string {
	switch {
	case m["inputSchema"] != nil:
		return "tool"
	case m["uriTemplate"] != nil:
		return "template"
	case m["uri"] != nil:
		return "resource"
	case m["arguments"] != nil:
		return "prompt"
	}
	return "tool"
}

func oneDefinition(kind string, m map[string]any) (definition, bool) {
	name, _ := m["name"].(string)
	if name == "" {
		if u, ok := m["uriTemplate"].(string); ok {
			name = u
		} else if u, ok := m["uri"].(string); ok {
			name = u
		}
	}
	if name == "" {
		return definition{}, false
	}
	d := definition{kind: kind, name: name}
	d.texts = DefinitionTexts(m)
	return d, true
}

// DefinitionTexts returns what a model reads of a tool, prompt, resource or
// template definition (decoded JSON): its description and title, the
// descriptions and titles in its input schema, and its arguments'
// descriptions and titles. The description guard judges these together.
func DefinitionTexts(m map[string]any) []string {
	var out []string
	for _, k := range []string{"description", "title"} {
		if s, ok := m[k].(string); ok {
			out = append(out, s)
		}
	}
	out = SchemaTexts(m["inputSchema"], out)
	if args, ok := m["arguments"].([]any); ok {
		for _, a := range args {
			if am, ok := a.(map[string]any); ok {
				for _, k := range []string{"description", "title"} {
					if s, ok := am[k].(string); ok {
						out = append(out, s)
					}
				}
			}
		}
	}
	return out
}

// SchemaTexts appends the descriptions and titles in a JSON schema (as
// decoded: maps and slices), in a stable order, to out.
func SchemaTexts(v any, out []string) []string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if s, ok := x[k].(string); ok && (k == "description" || k == "title") {
				out = append(out, s)
				continue
			}
			out = SchemaTexts(x[k], out)
		}
	case []any:
		for _, e := range x {
			out = SchemaTexts(e, out)
		}
	}
	return out
}

// ResultTexts appends the texts a model reads in a result or message
// (decoded JSON) to out: content blocks' text, title and description,
// embedded resources' text, every string of structuredContent, a prompt's
// description and messages, resources/read contents' text, and sampling
// and elicitation messages (messages, systemPrompt, message). Binary data
// and _meta are left out.
func ResultTexts(v any, out []string) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return out
	}
	for _, k := range []string{"description", "systemPrompt", "message"} {
		if s, ok := m[k].(string); ok {
			out = append(out, s)
		}
	}
	if c, ok := m["content"]; ok {
		out = contentTexts(c, out)
	}
	if sc, ok := m["structuredContent"]; ok {
		out = allStrings(sc, out)
	}
	if msgs, ok := m["messages"].([]any); ok {
		for _, e := range msgs {
			if mm, ok := e.(map[string]any); ok {
				out = contentTexts(mm["content"], out)
			}
		}
	}
	if cs, ok := m["contents"].([]any); ok {
		for _, e := range cs {
			if cm, ok := e.(map[string]any); ok {
				if s, ok := cm["text"].(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// contentTexts appends the text of a content block or a list of them.
func contentTexts(v any, out []string) []string {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = contentTexts(e, out)
		}
	case map[string]any:
		for _, k := range []string{"text", "title", "description"} {
			if s, ok := x[k].(string); ok {
				out = append(out, s)
			}
		}
		if r, ok := x["resource"].(map[string]any); ok {
			if s, ok := r["text"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func allStrings(v any, out []string) []string {
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case map[string]any:
		for _, e := range x {
			out = allStrings(e, out)
		}
	case []any:
		for _, e := range x {
			out = allStrings(e, out)
		}
	}
	return out
}

// String is a one-line account of an item's verdict.
func (it SampleItem) String() string {
	head := it.Kind
	if it.Name != "" {
		head += " " + it.Name
	}
	if !it.Flagged {
		return head + ": clean"
	}
	var parts []string
	for _, f := range it.Findings {
		parts = append(parts, f.Rule)
	}
	if len(it.Removed) > 0 {
		parts = append(parts, "removes "+describeCounts(it.Removed))
	}
	return fmt.Sprintf("%s: flagged (%s)", head, strings.Join(parts, "; "))
}
