// Command gwprof runs the mcpedge gateway in-process with a CPU profile, for
// mcpbench --cpuprofile. It wires the same packages the way `mcpedge serve`
// does (config, gateway, HTTP handler) so the gateway itself needs no
// profiling flag; it is a benchmark tool, not a second gateway.
//
//	MCPBENCH_CPUPROFILE=gw.pprof gwprof serve --config FILE [--listen ADDR]
//
// With MCPBENCH_MEMPROFILE=FILE it also writes an allocation profile
// (inspect with -sample_index=alloc_space). Profiles are written when it gets
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/bench/internal/fixture"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gwprof: ")
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		log.Fatal("usage: gwprof serve --config FILE [--listen ADDR]")
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	cfgPath := fs.String("config", "", "TOML configuration `file`")
	listen := fs.String("listen", "", "override server.listen")
	_ = fs.Parse(os.Args[2:])
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		log.Fatal(err)
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
	}
	if !fixture.IsLoopback(cfg.Server.Listen) {
		log.Fatalf("refusing to listen on non-loopback address %s", cfg.Server.Listen)
	}
	stopProfile, err := fixture.StartCPUProfile(os.Getenv("MCPBENCH_CPUPROFILE"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	g := gateway.New(cfg, telemetry.NewLogger(cfg.Server.LogLevel), telemetry.NewMetrics())
	g.Start(ctx)
	h := g.Handler(gateway.HTTPOptions{
		Token: os.Getenv(cfg.Server.AuthTokenEnv), AllowedOrigins: cfg.Server.AllowedOrigins,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth,
	})
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	fmt.Printf("gwprof listening on http://%s/mcp\n", ln.Addr())
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	stopProfile()
	if p := os.Getenv("MCPBENCH_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	_ = srv.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	g.Stop(sctx)
}
