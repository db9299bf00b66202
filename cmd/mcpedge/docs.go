package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// docsCmd writes the reference documentation generated from the command
// declarations, so that it can not disagree with the binary.
func (a *app) docsCmd() *cobra.Command {
	man := &cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page (section 1) for every command into DIR",
		Example: "  mcpedge docs man /usr/local/share/man/man1\n" +
			"  man -l /usr/local/share/man/man1/mcpedge-serve.1",
		Args: posArgs("the DIR to write to"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			hdr := &doc.GenManHeader{Title: "MCPEDGE", Section: "1", Source: "mcpedge " + version, Manual: "mcpedge manual"}
			if err := doc.GenManTree(c.Root(), hdr, args[0]); err != nil {
				return fmt.Errorf("writing the man pages: %w", err)
			}
			fmt.Fprintf(a.stdout, "wrote the man pages to %s\n", args[0])
			return nil
		},
	}
	md := &cobra.Command{
		Use:   "markdown DIR",
		Short: "Write a Markdown page for every command into DIR",
		Args:  posArgs("the DIR to write to"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			if err := doc.GenMarkdownTree(c.Root(), args[0]); err != nil {
				return fmt.Errorf("writing the Markdown pages: %w", err)
			}
			fmt.Fprintf(a.stdout, "wrote the Markdown pages to %s\n", args[0])
			return nil
		},
	}
	return group("docs", "Generate the man pages or Markdown reference from the command declarations", man, md)
}
