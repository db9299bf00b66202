package config

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string
	// Line and Col are 1-based; 0 means unknown (for example a problem
	// about the file as a whole).
	Line, Col int
	// Field is the path of the offending setting, such as
	// "upstreams[1].url" or `mcpServers["My Server"].command`. It may be ""
	// for syntax errors.
	Field string
	Msg   string
}

// String formats p as "file:line:col: field: message", leaving out the parts
// that are unknown, which is the form editors and terminals turn into links.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		if p.File != "" {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is the error returned by the loaders. It lists every problem
// found, in file order, so an operator can fix them all in one go.
type Problems []Problem

// Error returns one formatted Problem per line.
func (ps *Problems) Error() string {
	if ps == nil {
		return ""
	}
	lines := make([]string, len(*ps))
	for i, p := range *ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by position; problems without a position go
// last, in the order they were found.
func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
