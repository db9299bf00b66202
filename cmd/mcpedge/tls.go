package main

import (
	"context"
	"log/slog"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
)

// openTLS loads [server.tls] (nil without it): a file that is missing, a
// key that does not match its certificate, a CA bundle without
// certificates stop the start here, before anything else is opened.
func openTLS(cfg *config.Config, log *slog.Logger, m *tlsconf.Metrics) (*tlsconf.Server, error) {
	if !cfg.Server.TLS.Enabled() {
		return nil, nil
	}
	return tlsconf.New(cfg.Server.TLS, tlsconf.Options{DataDir: cfg.Server.DataDir, Log: log.With("component", "tls"), Metrics: m})
}

// reloadTLS applies a reloaded [server.tls]: the files again, the client
// CA bundle and the certificate mapping; turning TLS on or off and
// [server.tls.acme] need a restart.
func reloadTLS(t *tlsconf.Server, sec *securityStack, next *config.Config, log *slog.Logger) {
	switch {
	case t == nil && next.Server.TLS.Enabled():
		log.Warn("[server.tls] added; restart to serve TLS (plain HTTP is served until then)")
		return
	case t == nil:
		return
	}
	if err := t.Apply(next.Server.TLS); err != nil {
		log.Error("[server.tls] not reloaded; the running TLS settings stay", "err", err.Error())
		return
	}
	if sec.Auth != nil {
		sec.Auth.SetClientCerts(next.Server.TLS.ClientCerts)
	}
}

// readinessChecks are what /readyz checks besides upstreams: the store,
// and Redis when configured.
func readinessChecks(sec *securityStack) []gateway.ReadinessCheck {
	checks := []gateway.ReadinessCheck{{Name: "store", Kind: sec.Store.Kind(), Check: sec.Store.Ping}}
	if sec.Redis != nil {
		checks = append(checks, gateway.ReadinessCheck{Name: "redis", Kind: "redis", Check: func(ctx context.Context) error {
			return sec.Redis.Ping(ctx).Err()
		}})
	}
	return checks
}
