// Command mcpedge is a gateway for Model Context Protocol servers.
//
// Every command, subcommand and flag is declared once, with cobra, in
// this package (root.go and the file of each command group); help, shell
// completions (mcpedge completion bash|zsh|fish) and the man pages
// (mcpedge docs man DIR) are generated from that declaration. Exit codes:
// 0 done, 1 failed, 2 a wrong command line (internal/cli, docs/cli.md).
package main

import (
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
