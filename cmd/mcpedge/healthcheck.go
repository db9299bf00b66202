package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/healthprobe"
)

// healthcheckCmd is the container image's HEALTHCHECK: it exits 0 when the
// gateway's liveness endpoint answers 200 (internal/healthprobe).
func (a *app) healthcheckCmd() *cobra.Command {
	var o healthprobe.Options
	c := &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when a running gateway's liveness endpoint answers (for container health checks)",
		Args:  posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := healthprobe.Probe(c.Context(), o); err != nil {
				return err
			}
			_, err := fmt.Fprintln(a.stdout, "ok")
			return err
		},
	}
	c.Flags().StringVar(&o.URL, "url", healthprobe.DefaultURL, "liveness `URL` to ask")
	c.Flags().DurationVar(&o.Timeout, "timeout", 0, "give up after this `duration` (default 3s)")
	c.Flags().StringVar(&o.ServerName, "server-name", "", "`name` an https endpoint's certificate must carry (when --url names an address)")
	return c
}
