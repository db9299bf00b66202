// Command sdkecho is a benchmark upstream built on the official go-sdk: a
// typed "echo" tool that returns its "message" argument as text, and "blob",
// which returns a given number of bytes of text (see [fixture.SDKEcho]). It
// is what a small Go MCP server usually looks like.
//
//	sdkecho [--listen 127.0.0.1:0] [--sse] [--stateless] [--cpuprofile FILE]
//	sdkecho --stdio
//
// Over HTTP it answers POSTs with application/json (the SDK's JSONResponse
// mode), which measured faster than the SDK's default text/event-stream
// answers; --sse restores the default. It prints
// "listening on http://ADDR/mcp" once the listener is up, and stops on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "serve Streamable HTTP on loopback `host:port` (path /mcp)")
	stdio := flag.Bool("stdio", false, "serve MCP over stdin/stdout instead of HTTP")
	sse := flag.Bool("sse", false, "answer POSTs with text/event-stream (the SDK default) instead of application/json")
	stateless := flag.Bool("stateless", false, "run the SDK handler stateless (no sessions; 2026-07-28 clients)")
	sessionEra := flag.Bool("session-era", false, "offer only the session era's protocol versions (2025-11-25 and older), not 2026-07-28")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until SIGINT/SIGTERM")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("sdkecho: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stopProfile, err := fixture.StartCPUProfile(*cpuprofile)
	if err != nil {
		log.Fatal(err)
	}
	var opts *mcp.ServerOptions
	if *sessionEra {
		opts = &mcp.ServerOptions{SupportedProtocolVersions: []string{"2025-11-25", "2025-06-18", "2025-03-26"}}
	}
	s := fixture.SDKEchoWith(opts)
	if *stdio {
		err = s.Run(ctx, &mcp.StdioTransport{})
		if ctx.Err() != nil {
			err = nil
		}
	} else {
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{JSONResponse: !*sse, Stateless: *stateless})
		err = fixture.Serve(ctx, *listen, h, os.Stdout)
	}
	stopProfile()
	if err != nil {
		log.Fatal(err)
	}
}
