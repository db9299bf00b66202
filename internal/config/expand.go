package config

import (
	"errors"
	"fmt"
	"strings"
)

// Environment expansion lets secrets (tokens, API keys) stay out of the
// config file. It is applied only to upstream env values, header values and
// url: the places secrets go. Expanding everywhere would make a stray "$" in
// a command line argument or a name change meaning silently.
//
// Syntax:
//
//	${VAR}            value of VAR; an unset VAR is a problem
//	${VAR:-default}   value of VAR, or default if VAR is unset or empty
//	${env:VAR}        same as ${VAR} (the spelling some MCP clients use)
//	$$                a literal "$"
//
// Any other "$" is a problem, so that "$VAR" (which would otherwise pass
// through unexpanded and fail much later) is caught at load time.

// expandString expands s using lookup. It returns the result, the names of
// unset variables (each once) and a syntax error, if any.
//
// clientRefs admits the references of client files: ${input:id}, passed
// to lookup whole.
func expandString(s string, lookup func(string) (string, bool), clientRefs bool) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	var missing []string
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		if len(s) >= 2 && s[1] == '$' {
			b.WriteByte('$')
			s = s[2:]
			continue
		}
		if len(s) < 2 || s[1] != '{' {
			return "", nil, errors.New(`"$" must be followed by "{" (as in ${VAR}) or by "$" (a literal "$")`)
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", nil, errors.New(`unterminated "${": missing "}"`)
		}
		ref := s[2:end]
		s = s[end+1:]

		name, def, hasDef := strings.Cut(ref, ":-")
		name = strings.TrimPrefix(name, "env:")
		if id, ok := strings.CutPrefix(name, "input:"); ok && clientRefs && id != "" {
			// a VS Code input, resolved by lookup
		} else if !validEnvName(name) {
			return "", nil, fmt.Errorf("invalid variable name %q in ${...}: want letters, digits and _, not starting with a digit", truncate(name, 64))
		}
		v, ok := lookup(name)
		switch {
		case hasDef && (!ok || v == ""):
			b.WriteString(def)
		case ok:
			b.WriteString(v)
		default:
			missing = appendUnique(missing, name)
		}
	}
	return b.String(), missing, nil
}

// expand expands s for the setting at p/field and reports problems. It
// returns the expanded value and whether some variable was unset.
func (d *decoder) expand(s string, p pos, field string, tolerateUnset bool) (string, bool) {
	out, missing, err := expandString(s, d.lookup, d.client != nil)
	if err != nil {
		d.add(p, field, "%s", err)
		return s, false
	}
	if d.raw != nil {
		d.raw[field] = d.client.portable(s)
	}
	// An import writes the reference, not its value: the variable is
	// needed where the imported configuration runs, not here.
	if !tolerateUnset && d.raw == nil {
		for _, name := range missing {
			d.unsetProblem(p, field, name)
		}
	}
	return out, len(missing) > 0
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
