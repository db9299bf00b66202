// Command minecho is the cheapest possible MCP upstream, for benchmarks: a
// hand-written Streamable HTTP endpoint with one "echo" tool that answers
// initialize, notifications, tools/list, tools/call and ping with
// application/json (see [fixture.MinEcho]). It is a test fixture, not an
// example of how to write a server.
//
//	minecho [--listen 127.0.0.1:0] [--cpuprofile FILE]
//
// It prints "listening on http://ADDR/mcp" once the listener is up, and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "serve on loopback `host:port` (path /mcp)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` until SIGINT/SIGTERM")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("minecho: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	stopProfile, err := fixture.StartCPUProfile(*cpuprofile)
	if err != nil {
		log.Fatal(err)
	}
	err = fixture.Serve(ctx, *listen, fixture.MinEcho(), os.Stdout)
	stopProfile()
	if err != nil {
		log.Fatal(err)
	}
}
