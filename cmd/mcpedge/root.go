package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
)

// app is what every command runs with: its standard streams and whether
// a command's own code has started (before that, an error is a mistake
// in the command line: exit 2).
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	started        bool
}

// run executes the command line args and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(context.Background())
	if err == nil {
		return cmdline.ExitOK
	}
	fmt.Fprintf(stderr, "mcpedge: %v\n", err)
	if cmdline.IsUsage(err) || !a.started {
		fmt.Fprintf(stderr, "see '%s --help' for its usage\n", cmd.CommandPath())
		return cmdline.ExitUsage
	}
	return cmdline.ExitFailed
}

// rootCmd declares the whole command line.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mcpedge",
		Short: "A secure, observable gateway for MCP servers",
		Long: `mcpedge — a secure, observable gateway for MCP servers.

Run the gateway with "mcpedge serve" (Streamable HTTP) or "mcpedge stdio"
(for desktop clients); administer the store it keeps (tenants, keys,
users, plans, pins, the audit log, the offline queue, sealed secrets, hub
enrollment) with the other commands, which work while a gateway runs on
the same store. "mcpedge lattice bench" benchmarks the built-in lattice
engine.

Exit status: 0 done, 1 failed, 2 a wrong command line (see docs/cli.md).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return cmdline.Usagef("%s", msg)
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if v, _ := c.Flags().GetBool("version"); v {
				_, err := fmt.Fprintf(a.stdout, "mcpedge %s\n", version)
				return err
			}
			c.SetOut(a.stderr)
			_ = c.Help()
			return cmdline.Usagef("give a command")
		},
		// Set before a command's own code runs; everything earlier (flags,
		// arguments) is a usage error.
		PersistentPreRun: func(*cobra.Command, []string) { a.started = true },
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	// --version is our own flag, not cobra's: cobra prints its version
	// through text/template, and a reachable template makes the linker
	// keep every exported method of every type that is put in an
	// interface (9.5 MB of the stripped binary, docs/benchmarks.md).
	root.Flags().BoolP("version", "v", false, "print the version")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cmdline.Usagef("%s: %v", cmdName(c), err)
	})
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddGroup(&cobra.Group{ID: "run", Title: "Running the gateway:"},
		&cobra.Group{ID: "admin", Title: "Administering its store:"},
		&cobra.Group{ID: "other", Title: "Other commands:"})
	for _, c := range []*cobra.Command{a.serveCmd(), a.stdioCmd(), a.configCmd()} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range a.adminCmds() {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.queueCmd(), a.secretsCmd(), a.hubCmd(), a.deviceCmd(), a.backupCmd(), a.restoreCmd()} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.latticeCmd(), a.healthcheckCmd(), a.versionCmd(), a.docsCmd()} {
		c.GroupID = "other"
		root.AddCommand(c)
	}
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")
	return root
}

// cmdName is a command's path without the binary's name: "tenant create".
func cmdName(c *cobra.Command) string {
	return strings.TrimPrefix(c.CommandPath(), "mcpedge ")
}

// group is a command that only holds subcommands: run alone, or with an
// unknown subcommand, it is a usage error that lists them.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		// "tenant --config F" is a missing subcommand, not a bad flag.
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(c *cobra.Command, args []string) error {
			var names []string
			for _, s := range c.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, "mcpedge "+cmdName(s))
				}
			}
			if len(args) == 0 {
				return cmdline.Usagef("%s: give a subcommand: %s", cmdName(c), strings.Join(names, ", "))
			}
			msg := fmt.Sprintf("unknown command \"%s %s\"", cmdName(c), args[0])
			if s := c.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return cmdline.Usagef("%s; the subcommands are %s", msg, strings.Join(names, ", "))
		},
	}
	g.AddCommand(subs...)
	return g
}

// posArgs checks a command's positional arguments: want names each
// required one, in order ("the tenant NAME").
func posArgs(want ...string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		var hint func(string) string
		if c.Flags().Lookup("config") != nil {
			hint = cmdline.ConfigFileHint
		}
		return cmdline.Positional(cmdName(c), args, hint, want...)
	}
}

// configFlags are --config and --mcp-servers, which say where a
// command's configuration comes from.
type configFlags struct{ config, mcpServers string }

func addConfigFlags(c *cobra.Command) *configFlags {
	f := &configFlags{}
	c.Flags().StringVar(&f.config, "config", "", "TOML configuration `FILE` (docs/configuration.md)")
	c.Flags().StringVar(&f.mcpServers, "mcp-servers", "", "an MCP client's JSON `FILE` (mcpServers, VS Code's servers, a registry server.json); with --config its servers are added")
	_ = c.MarkFlagFilename("config", "toml")
	_ = c.MarkFlagFilename("mcp-servers", "json")
	return f
}

// source is where the configuration comes from, so that it can be
// reloaded.
type source struct {
	path       string
	mcpServers bool
	servers    string // with --config: a client file whose servers are added (config.LoadCombined)
}

// source says which file the flags name. Combining --config and
// --mcp-servers (the TOML's upstreams plus the client file's, issue 16)
// is internal/config's to decide: when it can load both, this is the one
// place to pass both on, and source.load the one place to call it.
func (f *configFlags) source() (source, error) {
	if f.config != "" && f.mcpServers != "" {
		return source{path: f.config, servers: f.mcpServers}, nil
	}
	if f.mcpServers != "" {
		return source{path: f.mcpServers, mcpServers: true}, nil
	}
	return source{path: f.config}, nil
}

// load reads the source and the configuration.
func (f *configFlags) load() (source, *config.Config, error) {
	s, err := f.source()
	if err != nil {
		return source{}, nil, err
	}
	cfg, err := s.load()
	return s, cfg, err
}

func (s source) load() (*config.Config, error) {
	switch {
	case s.servers != "":
		return config.LoadCombined(s.path, s.servers)
	case s.path == "":
		return config.Default(), nil
	case s.mcpServers:
		return config.LoadMCPServers(s.path)
	default:
		return config.Load(s.path)
	}
}

// jsonFlag declares --json.
func jsonFlag(c *cobra.Command, v *bool) {
	c.Flags().BoolVar(v, "json", false, "print JSON instead of text")
}

// yesFlag declares --yes, which confirms a destructive command without
// asking.
func yesFlag(c *cobra.Command, v *bool) {
	c.Flags().BoolVarP(v, "yes", "y", false, "do it without asking (scripts; required when stdin is not a terminal)")
}

// confirm asks the operator before a destructive command (cmdline.Prompter).
func (a *app) confirm(c *cobra.Command, question string, yes bool) error {
	return cmdline.Prompter{In: a.stdin, Out: a.stderr}.Confirm(cmdName(c), question, yes)
}

// interruptible is ctx cancelled by an interrupt (Ctrl-C).
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt)
}

// versionInfo is what `mcpedge version --json` prints.
type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func (a *app) versionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  posArgs(),
		RunE: func(*cobra.Command, []string) error {
			v := versionInfo{Version: version, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
			if asJSON {
				return cmdline.PrintJSON(a.stdout, v)
			}
			_, err := fmt.Fprintf(a.stdout, "mcpedge %s (%s, %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
			return err
		},
	}
	jsonFlag(c, &asJSON)
	return c
}
