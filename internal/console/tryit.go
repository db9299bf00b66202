package console

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// The catalog's try-it form has one input per argument of the tool's
// input schema, named "arg:KIND:NAME", next to the arguments as JSON.
// A field left empty is not sent; a filled one sets its argument over
// the JSON's. The kinds:
//
//	string   a text input (a <select> when the schema lists string enum values)
//	integer  a number input, sent as a JSON integer
//	number   a number input, sent as a JSON number
//	boolean  a <select> of true and false
//	json     a text area holding JSON (arrays, objects, anything else)

// fieldKind is the try-it input for a property of type typ (a JSON
// Schema "type": a string, or a list whose first non-null entry counts).
func fieldKind(typ any, enum []any) (string, []string) {
	t, _ := typ.(string)
	if list, ok := typ.([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok && s != "null" {
				t = s
				break
			}
		}
	}
	switch t {
	case "string":
		var choices []string
		for _, e := range enum {
			s, ok := e.(string)
			if !ok {
				return "string", nil
			}
			choices = append(choices, s)
		}
		return "string", choices
	case "integer", "number", "boolean":
		return t, nil
	}
	return "json", nil
}

// fieldName is the form field of a tool argument.
func fieldName(kind, name string) string { return "arg:" + kind + ":" + name }

// maxArgFields bounds how many argument fields one call reads.
const maxArgFields = 256

// fromFields sets the filled argument fields of form in args; it returns
// a message for a field that does not hold its kind.
func fromFields(form url.Values, args map[string]any) string {
	n := 0
	for key, vals := range form {
		rest, ok := strings.CutPrefix(key, "arg:")
		if !ok || len(vals) == 0 {
			continue
		}
		if n++; n > maxArgFields {
			return "Too many argument fields."
		}
		kind, name, ok := strings.Cut(rest, ":")
		if !ok || name == "" {
			return "An argument field has no name."
		}
		raw := vals[0]
		if strings.TrimSpace(raw) == "" {
			continue
		}
		switch kind {
		case "string":
			args[name] = raw
		case "integer":
			i, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
			if err != nil {
				return "Argument " + name + " must be a whole number."
			}
			args[name] = i
		case "number":
			f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
			if err != nil {
				return "Argument " + name + " must be a number."
			}
			args[name] = f
		case "boolean":
			switch raw {
			case "true":
				args[name] = true
			case "false":
				args[name] = false
			default:
				return "Argument " + name + " must be true or false."
			}
		case "json":
			var v any
			if err := json.Unmarshal([]byte(raw), &v); err != nil {
				return "Argument " + name + " is not JSON: " + err.Error()
			}
			args[name] = v
		default:
			return "Argument " + name + " has an unknown kind."
		}
	}
	return ""
}

// argFields writes the try-it inputs of a tool's arguments.
func argFields(m *markup, t *toolView) {
	if len(t.Params) == 0 {
		return
	}
	m.raw("<fieldset>\n<legend>Arguments (empty fields are not sent)</legend>\n")
	for i, p := range t.Params {
		id := "arg-" + t.Name + "-" + strconv.Itoa(i)
		m.raw("<label")
		m.attr("for", id)
		m.raw(">")
		m.text(p.Name)
		if p.Required {
			m.raw(` <span aria-label="required">*</span>`)
		}
		m.raw(" <small>")
		m.text(p.Type)
		m.raw("</small></label>\n")
		name := fieldName(p.Kind, p.Name)
		switch {
		case p.Kind == "boolean" || len(p.Enum) > 0:
			choices := p.Enum
			if p.Kind == "boolean" {
				choices = []string{"true", "false"}
			}
			m.raw("<select")
			m.attr("id", id)
			m.attr("name", name)
			m.raw(`><option value="">(not sent)</option>`)
			for _, c := range choices {
				m.raw("<option")
				m.attr("value", c)
				m.raw(">")
				m.text(c)
				m.raw("</option>")
			}
			m.raw("</select>\n")
		case p.Kind == "json":
			m.raw("<textarea")
			m.attr("id", id)
			m.attr("name", name)
			m.raw(` rows="2" spellcheck="false" placeholder="JSON"></textarea>`, "\n")
		default:
			m.raw("<input")
			m.attr("id", id)
			m.attr("name", name)
			switch p.Kind {
			case "integer":
				m.raw(` type="number" step="1"`)
			case "number":
				m.raw(` type="number" step="any"`)
			}
			m.raw(">\n")
		}
	}
	m.raw("</fieldset>\n")
}
