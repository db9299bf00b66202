package cmdline

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// A Prompter asks the operator to confirm destructive commands.
type Prompter struct {
	// In is where the answer is read; it must be a terminal for a
	// question to be asked (IsTerminal).
	In io.Reader
	// Out is where the question is written (stderr: stdout may be piped).
	Out io.Writer
	// IsTerminal reports whether In is an interactive terminal. Nil:
	// In is an *os.File that golang.org/x/term says is a terminal.
	IsTerminal func(io.Reader) bool
}

// Terminal reports whether r is an *os.File open on a terminal.
func Terminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Confirm asks "question [y/N]" and returns nil only on yes. yes (the
// command's --yes flag) confirms without asking. When In is not a
// terminal and yes is false it asks nothing and returns a UsageError
// saying to add --yes: a script never deletes by accident, and never
// hangs on a question nobody sees. name is the command ("tenant rm").
func (p Prompter) Confirm(name, question string, yes bool) error {
	if yes {
		return nil
	}
	isTerm := p.IsTerminal
	if isTerm == nil {
		isTerm = Terminal
	}
	if !isTerm(p.In) {
		return Usagef("%s: %s; not asking, since stdin is not a terminal: add --yes to confirm", name, strings.TrimSuffix(question, "?"))
	}
	fmt.Fprintf(p.Out, "%s [y/N] ", question)
	line, err := bufio.NewReader(p.In).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(p.Out)
		return ErrAborted
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return ErrAborted
}
