package pin

import (
	"fmt"
	"strings"
)

// maxDiffCells bounds the work of the line diff: above it (two definitions
// of thousands of lines each) the whole old text is shown removed and the
// whole new one added.
const maxDiffCells = 4 << 20

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// Diff is a unified line diff of the pretty-printed JSON of two
// definitions, for people: "--- pinned", "+++ offered", then hunks with
// "@@ -l,n +l,n @@" headers and up to three lines of context. It is ""
// when the definitions are equal.
func Diff(pinned, offered []byte) string {
	a, b := lines(Pretty(pinned)), lines(Pretty(offered))
	ops := editScript(a, b)
	changed := false
	for _, o := range ops {
		if o.kind != ' ' {
			changed = true
			break
		}
	}
	if !changed {
		return ""
	}
	var out strings.Builder
	out.WriteString("--- pinned\n+++ offered\n")
	// Hunks: runs of changes with up to diffContext lines around them,
	// merged when their contexts touch.
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-diffContext)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			// A run of unchanged lines: does another change follow
			// within two contexts?
			j := end
			for j < len(ops) && ops[j].kind == ' ' {
				j++
			}
			if j == len(ops) || j-end > 2*diffContext {
				end = min(len(ops), end+diffContext)
				break
			}
			end = j
		}
		oldStart, newStart := ops[start].a, ops[start].b
		var oldN, newN int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				oldN++
			}
			if o.kind != '-' {
				newN++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", span(oldStart, oldN), span(newStart, newN))
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		i = end
	}
	return out.String()
}

// span formats a hunk range: 1-based start line and count ("l,0" names
// the line before an empty range, as diff -u does).
func span(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// op is one line of an edit script: ' ' kept, '-' removed, '+' added; a
// and b are the 0-based positions in the old and new text before it.
type op struct {
	kind byte
	text string
	a, b int
}

// editScript is a shortest edit script from a to b by longest common
// subsequence (definitions are small; see maxDiffCells).
func editScript(a, b []string) []op {
	var out []op
	if len(a)*len(b) > maxDiffCells {
		for i, s := range a {
			out = append(out, op{'-', s, i, 0})
		}
		for j, s := range b {
			out = append(out, op{'+', s, len(a), j})
		}
		return out
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	w := len(b) + 1
	lcs := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*w+j] = lcs[(i+1)*w+j+1] + 1
			} else {
				lcs[i*w+j] = max(lcs[(i+1)*w+j], lcs[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, op{' ', a[i], i, j})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[(i+1)*w+j] >= lcs[i*w+j+1]):
			out = append(out, op{'-', a[i], i, j})
			i++
		default:
			out = append(out, op{'+', b[j], i, j})
			j++
		}
	}
	return out
}
