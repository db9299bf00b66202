package main

import (
	"errors"
	"flag"
	"io"

	"github.com/mcpedge/mcpedge/internal/config"
)

// cmdConfigImport prints the TOML equivalent of an MCP client's
// configuration file (issue 16; the reading and writing are
// config.ImportClientFile and Imported.TOML).
func cmdConfigImport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("usage: mcpedge config import FILE (an MCP client's JSON file: mcpServers, VS Code's servers, or a registry server.json)")}
	}
	im, err := config.ImportClientFile(fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = stdout.Write(im.TOML())
	return err
}
