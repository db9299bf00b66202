package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
	"github.com/mcpedge/mcpedge/internal/tracing"
)

// openTracing builds the tracer provider of [telemetry.tracing] (a no-op
// one when it has no endpoint) and returns it with the function that
// flushes and stops it at shutdown.
func openTracing(cfg *config.Config, log *slog.Logger, m *telemetry.Metrics, certs *tlsconf.Metrics) (*tracing.Provider, func(), error) {
	tc := cfg.Telemetry.Tracing
	if !tc.Enabled() {
		return tracing.Off(), func() {}, nil
	}
	tlsCfg, err := tlsconf.Client(tc.TLS, "telemetry.tracing.tls", "tracing", certs)
	if err != nil {
		return nil, nil, err
	}
	p, err := tracing.New(tc, tracing.Options{Log: log, Registry: m.Registry, TLS: tlsCfg, Version: version})
	if err != nil {
		return nil, nil, err
	}
	log.Info("tracing on", "endpoint", tc.Endpoint, "sampling", tc.Sampling, "parent_based", tc.ParentBased)
	return p, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(tc.Timeout))
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Warn("tracing: flushing spans at shutdown", "err", err)
		}
	}, nil
}
