package cmdline

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestPositional(t *testing.T) {
	for _, tc := range []struct {
		args, want []string
		msg        string
	}{
		{nil, []string{"the NAME"}, "tenant rm: missing the NAME"},
		{[]string{"a", "b"}, []string{"the NAME"}, `tenant rm: unexpected argument "b"`},
		{[]string{"q.toml"}, nil, `tenant rm: unexpected argument "q.toml"; a configuration file is given with --config q.toml`},
		{[]string{"c.json"}, nil, `a desktop client's file is given with --mcp-servers c.json`},
	} {
		err := Positional("tenant rm", tc.args, ConfigFileHint, tc.want...)
		if err == nil || !IsUsage(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Positional(%v, %v) = %v, want a usage error with %q", tc.args, tc.want, err, tc.msg)
		}
	}
	if err := Positional("x", []string{"a"}, nil, "the A"); err != nil {
		t.Errorf("exact arguments: %v", err)
	}
}

func TestConfirm(t *testing.T) {
	term := func(io.Reader) bool { return true }
	notTerm := func(io.Reader) bool { return false }
	for _, tc := range []struct {
		name   string
		in     string
		isTerm func(io.Reader) bool
		yes    bool
		usage  bool
		err    error
	}{
		{"--yes asks nothing", "", notTerm, true, false, nil},
		{"no terminal, no --yes", "y\n", notTerm, false, true, nil},
		{"yes", "y\n", term, false, false, nil},
		{"YES", " YES \n", term, false, false, nil},
		{"no", "n\n", term, false, false, ErrAborted},
		{"empty answer", "\n", term, false, false, ErrAborted},
		{"end of input", "", term, false, false, ErrAborted},
	} {
		var out bytes.Buffer
		err := Prompter{In: strings.NewReader(tc.in), Out: &out, IsTerminal: tc.isTerm}.Confirm("tenant rm", "remove tenant acme?", tc.yes)
		switch {
		case tc.usage:
			if !IsUsage(err) || !strings.Contains(err.Error(), "add --yes") || out.Len() != 0 {
				t.Errorf("%s: %v, asked %q", tc.name, err, out.String())
			}
		case !errors.Is(err, tc.err) || (tc.err == nil && err != nil):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if !tc.yes && !tc.usage && !strings.Contains(out.String(), "remove tenant acme? [y/N]") {
			t.Errorf("%s: asked %q", tc.name, out.String())
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := OneLine("a\n  b\tc", 80); got != "a b c" {
		t.Errorf("OneLine = %q", got)
	}
	if got := OneLine("abcdef", 4); got != "abc…" {
		t.Errorf("OneLine = %q", got)
	}
	if got := OneLine(" ", 4); got != "-" {
		t.Errorf("OneLine = %q", got)
	}
}
