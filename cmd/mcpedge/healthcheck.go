package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mcpedge/mcpedge/internal/healthprobe"
)

// cmdHealthcheck is the container image's HEALTHCHECK: it exits 0 when the
// gateway's liveness endpoint answers 200 (internal/healthprobe).
func cmdHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o healthprobe.Options
	fs.StringVar(&o.URL, "url", healthprobe.DefaultURL, "liveness `URL` to ask")
	fs.DurationVar(&o.Timeout, "timeout", 0, "give up after this `duration` (default 3s)")
	fs.StringVar(&o.ServerName, "server-name", "", "`name` an https endpoint's certificate must carry (when --url names an address)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("healthcheck takes no arguments, got %q", fs.Args())}
	}
	if err := healthprobe.Probe(ctx, o); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
