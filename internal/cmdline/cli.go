// Package cmdline holds what every mcpedge command shares: the exit codes and
// the usage error that selects code 2, checks of positional arguments
// that name what is missing or unexpected, the confirmation that
// destructive commands ask for, and the table and JSON printers. The
// commands themselves are declared once, with cobra, in cmd/mcpedge.
package cmdline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Exit codes of the mcpedge binary (docs/cli.md lists them).
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitFailed: the command ran and failed (a store that can not be
	// opened, a name not found, a broken audit chain), or the operator
	// answered no to a confirmation.
	ExitFailed = 1
	// ExitUsage: the command line is wrong or incomplete (an unknown
	// command or flag, a missing or unexpected argument, a value out of
	// range, a destructive command without --yes when stdin is not a
	// terminal). Nothing was changed.
	ExitUsage = 2
)

// UsageError is a mistake in the command line: the binary exits with
// ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool {
	var ue UsageError
	return errors.As(err, &ue)
}

// ErrAborted is returned when the operator answers no to a confirmation.
var ErrAborted = errors.New("aborted: nothing was changed")

// Positional checks a command's positional arguments against the names
// of those it requires, in order: too few names the first missing one,
// too many names the first unexpected one. hint, when not empty, is
// added to the message about an unexpected argument.
func Positional(name string, args []string, hint func(arg string) string, want ...string) error {
	switch {
	case len(args) < len(want):
		return Usagef("%s: missing %s", name, want[len(args)])
	case len(args) > len(want):
		extra := args[len(want)]
		msg := fmt.Sprintf("%s: unexpected argument %q", name, extra)
		if hint != nil {
			if h := hint(extra); h != "" {
				msg += "; " + h
			}
		}
		return UsageError{errors.New(msg)}
	}
	return nil
}

// ConfigFileHint is the hint for an unexpected argument that looks like
// a configuration file, given where only --config and --mcp-servers name
// one.
func ConfigFileHint(arg string) string {
	lower := strings.ToLower(arg)
	switch {
	case strings.HasSuffix(lower, ".toml"):
		return fmt.Sprintf("a configuration file is given with --config %s", arg)
	case strings.HasSuffix(lower, ".json"):
		return fmt.Sprintf("a desktop client's file is given with --mcp-servers %s", arg)
	}
	return ""
}

// SplitList splits a comma-separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// PrintJSON prints v to w, indented: every command's --json output.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintTable prints rows under a tab-separated header, aligned: every
// command's table output.
func PrintTable(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Time formats t for a table: RFC 3339 in UTC, "-" when zero.
func Time(t time.Time) string { return TimeOr(t, "-") }

// TimeOr formats t for a table, zero when t is zero.
func TimeOr(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format(time.RFC3339)
}

// YesNo is "yes" or "no".
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// OneLine shortens s to one line of at most n characters for a table;
// "-" when empty.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}
