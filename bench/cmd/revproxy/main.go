// Command revproxy is a plain net/http/httputil.ReverseProxy, the yardstick
// mcpbench measures the gateway against: the cost of one HTTP hop that does
// not look at the MCP messages at all.
//
//	revproxy --target http://127.0.0.1:PORT/mcp [--listen 127.0.0.1:0]
//
// It serves /mcp, prints "listening on http://ADDR/mcp" once the listener is
// up, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "serve on loopback `host:port` (path /mcp)")
	target := flag.String("target", "", "upstream MCP endpoint `URL` (loopback)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("revproxy: ")
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" || !fixture.IsLoopback(u.Host) {
		log.Fatalf("--target must be a loopback http URL, got %q", *target)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.URL.Path = u.Scheme, u.Host, u.Path
			r.Out.Host = u.Host
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := fixture.Serve(ctx, *listen, rp, os.Stdout); err != nil {
		log.Fatal(err)
	}
}
