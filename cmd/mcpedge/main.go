// Command mcpedge is a gateway for Model Context Protocol servers.
//
// Usage:
//
//	mcpedge serve [--config FILE | --mcp-servers FILE] [--listen ADDR]
//	mcpedge stdio (--config FILE | --mcp-servers FILE)
//	mcpedge config check (--config FILE | --mcp-servers FILE)
//	mcpedge guard test FILE [--config FILE | --rules FILE] [--json]
//	mcpedge lattice bench [--large] [--3d] [--shape DIMS] [--repeats N]
//	mcpedge migrate | tenant … | key … | user … | plan … | pins … | audit … | queue … | secrets … | hub … | device …
//	mcpedge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	tuneGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(context.Background(), args[1:], stdout, stderr)
	case "stdio":
		err = cmdStdio(context.Background(), args[1:], stderr)
	case "config":
		if len(args) < 2 || args[1] != "check" {
			fmt.Fprintln(stderr, "usage: mcpedge config check (--config FILE | --mcp-servers FILE)")
			return 2
		}
		err = cmdConfigCheck(args[2:], stdout)
	case "lattice":
		err = cmdLattice(context.Background(), args[1:], stdout, stderr)
	case "queue":
		err = cmdQueue(context.Background(), args[1:], stdout, stderr)
	case "device":
		err = cmdDevice(context.Background(), args[1:], stdout, stderr)
	case "secrets":
		err = cmdSecrets(context.Background(), args[1:], stdout, stderr)
	case "hub":
		err = cmdHub(context.Background(), args[1:], stdout, stderr)
	case "guard":
		if len(args) > 1 && args[1] != "test" && args[1] != "-h" && args[1] != "--help" && args[1] != "help" {
			err = cmdAdmin(context.Background(), args, os.Stdin, stdout, stderr)
		} else {
			err = cmdGuard(args[1:], os.Stdin, stdout, stderr)
		}
	case "migrate", "tenant", "key", "user", "plan", "pins", "audit":
		err = cmdAdmin(context.Background(), args, os.Stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "mcpedge %s\n", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "mcpedge: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errFlagged) {
			return 1 // the report says what
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "mcpedge: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "mcpedge: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprint(w, `mcpedge — a secure, observable gateway for MCP servers

Commands:
  serve [--config FILE | --mcp-servers FILE] [--listen ADDR]
        Run the gateway over Streamable HTTP (default 127.0.0.1:8080).
  stdio (--config FILE | --mcp-servers FILE)
        Serve the aggregated catalog over stdio, for desktop clients.
  config check (--config FILE | --mcp-servers FILE)
        Validate a configuration and print every problem with file:line.
  guard test FILE [--config FILE | --rules FILE] [--personal-data] [--json]
        Run the guard's rules against a sample (definitions, a result or
        text) and print each verdict; exit status 1 when something is flagged.
  guard ls | guard show|approve|reject UPSTREAM KIND NAME [--hash HASH]
        Review the items the description guard quarantined (takes --config FILE).
  lattice bench [--large] [--3d] [--shape DIMS] [--repeats N]
        Benchmark the built-in lattice engine and print a table.
  migrate
        Bring the store's schema up to date (serve does this at start).
  tenant create NAME [--plan PLAN] [--upstreams a,b|*] | tenant ls | tenant rm NAME
  key create --tenant NAME [--role ROLE] [--scopes a,b] [--expires DUR] | key ls | key revoke ID|PREFIX | key rotate ID|PREFIX
  user create --tenant NAME USER [--role ROLE] | user ls | user rm
  plan ls | plan set NAME --key-per-minute N …
  pins ls [--upstream NAME] [--pending] | pins diff UPSTREAM KIND NAME | pins approve|reject UPSTREAM KIND NAME [--hash HASH]
  audit verify [--expect-head SEQ:HASH] | audit export [--tenant T] [--since TIME] [--out FILE]
        Administer tenants, credentials, plans and the audit log in the
        configured store (all take --config FILE; they work while a
        gateway runs on the same store). Run one without arguments for help.
  queue ls [--json] | queue retry ID | queue purge ID | queue rekey
        Inspect and manage the durable offline queue in <data_dir>/queue.db,
        where serve keeps calls of deferrable tools while their upstream is
        unreachable (see docs/edge.md).
  secrets status [--json] | secrets rekey
        Show the key ring the store's secrets are sealed with, or seal them
        again under a new data key (see docs/operations.md).
  hub token create --tenant NAME [--uses N] [--ttl DUR] | hub devices [--json]
        Create an enrollment token for edge gateways, or list the enrolled
        devices and their last contact (see docs/hub.md).
  device show [--json]
        Print this device's identity key (id, tpm or file, public key, PCRs),
        creating it on first use (see docs/device-identity.md).
  version
        Print the version.
`)
}
