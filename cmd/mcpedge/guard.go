package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mcpedge/mcpedge/internal/guard"
)

const guardUsage = `usage: mcpedge guard test FILE [--config FILE | --rules FILE] [--personal-data] [--json]

Run the guard's rules against a sample, as the gateway would, and print
each verdict with the rule that fired. FILE ("-": standard input) is
  - tool, prompt, resource or template definitions (a tools/list result, a
    JSON-RPC response carrying one, or an array of definitions): judged by
    the poisoning detector;
  - a tools/call, prompts/get or resources/read result, or a sampling or
    elicitation request: what the results guard would remove or redact;
  - anything else: judged as one description and scanned as one result.
The rules are the built-in ones plus those of the rule file [guard] rules
names in --config, or of --rules. The exit status is 1 when something is
flagged, 0 when the sample is clean.
`

// errFlagged is returned when a sample has flagged items: exit status 1.
var errFlagged = errors.New("flagged")

// cmdGuard runs `mcpedge guard …`; args start after "guard".
func cmdGuard(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprint(stderr, guardUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return usageError{errors.New("guard: the subcommand is test (see the usage above)")}
	}
	fs := flag.NewFlagSet("guard test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := configFlags(fs)
	rulesPath := fs.String("rules", "", "an operator's rule `file` (instead of the one --config names)")
	personal := fs.Bool("personal-data", false, "also redact e-mail addresses, phone and card numbers in results")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pos, err := parseSubcommand(fs, "mcpedge guard test FILE [--config FILE | --rules FILE] [--personal-data] [--json]", args[1:], "FILE")
	if err != nil {
		return err
	}
	s, err := src()
	if err != nil {
		return err
	}
	var rf *guard.RuleFile
	switch {
	case *rulesPath != "" && s.path != "":
		return usageError{errors.New("--rules and --config cannot be used together")}
	case *rulesPath != "":
		if rf, err = guard.LoadRuleFile(*rulesPath); err != nil {
			return err
		}
	case s.path != "":
		cfg, err := s.load()
		if err != nil {
			return err
		}
		if cfg.Guard.Rules != nil {
			rf = cfg.Guard.Rules.File
		}
	}
	rs, err := guard.NewRuleSet(rf)
	if err != nil {
		return err
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 64<<20))
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	rep := guard.CheckSample(data, rs, guard.NewRedactor(&guard.RedactOptions{PersonalData: *personal}))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%s: %s, rules %s\n", pos[0], rep.Format, rep.RulesVersion)
		for _, it := range rep.Items {
			fmt.Fprintln(stdout, it.String())
			for _, f := range it.Findings {
				fmt.Fprintf(stdout, "  %s: %s", f.Rule, f.Explain)
				if f.Match != "" {
					fmt.Fprintf(stdout, " — matched %q", f.Match)
				}
				fmt.Fprintln(stdout)
			}
		}
		fmt.Fprintf(stdout, "%d of %d flagged\n", rep.Flagged, len(rep.Items))
	}
	if rep.Flagged > 0 {
		return errFlagged
	}
	return nil
}
