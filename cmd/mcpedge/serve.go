package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/internal/admin"
	"github.com/mcpedge/mcpedge/internal/cmdline"
	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/gctune"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/tlsconf"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/mcpedge/mcpedge/internal/wasmtool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

func setVersions() {
	gateway.Version = version
	upstream.Version = version
}

func (a *app) serveCmd() *cobra.Command {
	var (
		cf     *configFlags
		listen string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway over Streamable HTTP",
		Long: `Run the gateway over Streamable HTTP, at http://HOST:PORT/mcp ([server] listen,
default 127.0.0.1:8080), with the admin API under /api/. Without a configuration
it serves only the built-in tools. The configuration file is watched and
reloaded on change and on SIGHUP; SIGINT and SIGTERM drain and stop.`,
		Example: "  mcpedge serve --config mcpedge.toml\n  mcpedge serve --mcp-servers claude_desktop_config.json --listen 127.0.0.1:9000",
		Args:    posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			s, cfg, err := cf.load()
			if err != nil {
				return err
			}
			return serve(c.Context(), s, cfg, listen, a.stdout)
		},
	}
	cf = addConfigFlags(c)
	c.Flags().StringVar(&listen, "listen", "", "override [server] listen (`HOST:PORT`)")
	return c
}

// serve runs the gateway until a signal stops it; listen, when set,
// overrides [server] listen.
func serve(ctx context.Context, s source, cfg *config.Config, listen string, stdout io.Writer) error {
	if listen != "" {
		cfg.Server.Listen = listen
	}
	setVersions()
	log := telemetry.NewLogger(cfg.Server.LogLevel)
	token := ""
	if cfg.Auth.Mode == config.AuthOff {
		token = os.Getenv(cfg.Server.AuthTokenEnv)
		if !config.ListenIsLoopback(cfg.Server.Listen) {
			return fmt.Errorf("refusing to listen on non-loopback address %s with auth.mode = \"off\": anyone who can reach it could use every upstream; set [auth] mode = \"required\" (the default) or listen on 127.0.0.1", cfg.Server.Listen)
		}
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Server.Listen, err)
	}
	defer ln.Close()
	useWASMCache(cfg, log)
	m := telemetry.NewMetrics()
	certMetrics := tlsconf.NewMetrics(m.Registry)
	tlsSrv, err := openTLS(cfg, log, certMetrics)
	if err != nil {
		return err
	}
	sec, closeSec, err := openSecurityFor(ctx, cfg, log, m.Registry, firstStart{Notice: stdout})
	if err != nil {
		return err
	}
	defer closeSec()
	if sec.EKRoots, err = loadEKRoots(cfg); err != nil {
		return err
	}
	link, err := startEdge(ctx, cfg, sec, m, certMetrics, log) // [hub] url: adds the hub's upstream to cfg
	if err != nil {
		return err
	}
	defer link.Close()
	g := gateway.New(cfg, log, m)
	g.SetCertMetrics(certMetrics)
	tp, stopTracing, err := openTracing(cfg, log, m, certMetrics)
	if err != nil {
		return err
	}
	defer stopTracing()
	g.SetTracing(tp)
	g.SetReadinessChecks(readinessChecks(sec)...)
	if sec.Layer != nil {
		g.SetSecurity(sec.Layer)
	} else {
		// Single-user mode: tool calls are audited all the same.
		g.SetCallAudit(sec.CallLog)
	}
	if sec.Meter != nil {
		g.SetMeter(sec.Meter)
	}
	keepSessions(ctx, g, sec, log)
	if sec.Policy != nil {
		sec.Policy.OnChange(g.PolicyChanged) // clients get list_changed when what they may see changed
	}
	lat := newLatticeService(cfg, log, sec)
	g.AddBuiltin("lattice", latticesvc.NewMCPServer(lat))
	g.SetEvents(sec.events())
	if sec.Webhooks != nil {
		whCtx, stopWebhooks := context.WithCancel(ctx)
		whDone := make(chan struct{})
		go func() { sec.Webhooks.Run(whCtx); close(whDone) }()
		defer func() { stopWebhooks(); <-whDone }() // before the store closes
	}
	stopQueue, queueReader := startQueue(ctx, cfg, g, sec.Store, log, m.Registry, sec.events())
	defer stopQueue()
	stopBackups := startBackups(ctx, cfg, sec.Store, log, m.Registry)
	defer stopBackups()
	pins, stopPins := startPins(ctx, g, sec, link, m.Registry, log)
	defer stopPins()
	book, stopQuarantine := startQuarantine(ctx, g, sec, m.Registry, log)
	defer stopQuarantine()
	if cfg.Server.DataDir != "" {
		g.SetCatalogDir(filepath.Join(cfg.Server.DataDir, "catalogs")) // keep_catalog survives a restart
	}
	g.Start(ctx)
	if sec.Billing != nil {
		// Customers, usage reports and the grace period, by the one
		// replica holding the report lease; stopped (lease given back)
		// before the store closes.
		bctx, stopBilling := context.WithCancel(ctx)
		billingDone := make(chan struct{})
		go func() { defer close(billingDone); sec.Billing.Run(bctx) }()
		defer func() { stopBilling(); <-billingDone }()
	}
	tenantQueue, _ := queueReader.(admin.TenantQueue) // nil without a queue
	ops := adminOps(cfg, sec, log, pins, runningUpstreams(g), book, tenantQueue)
	var h http.Handler
	con, err := webConsole(cfg, sec, ops, log, func() http.Handler { return h })
	if err != nil {
		return err
	}
	ho := gateway.HTTPOptions{
		Token: token, AllowedOrigins: cfg.Server.AllowedOrigins,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth,
		BodyReadTimeout: cfg.Server.BodyReadTimeout.D(),
		LoopbackOnly:    loopbackListener(ln),
		AllowedHosts:    cfg.Server.AllowedHosts,
		API:             adminAPI(cfg, sec, ops, lat, log, queueReader),
		Console:         con,
	}
	if sec.Layer == nil {
		ho.Anonymous = sec.anonymous()
	}
	h = g.Handler(ho)
	if gctune.FromEnv() {
		// GOGC 400 while calls flow, 100 (and memory handed back) when idle.
		tu := gctune.New(gctune.Options{Logger: log, OnMode: gctune.Gauge(m.Registry)})
		go tu.Run(ctx)
		h = tu.Handler(h)
	}
	srv := &http.Server{
		// With TLS, net/http sees the framing check's connections, not
		// *tls.Conn: ConnContext and WithConnState give requests their
		// TLS state (the client certificate) back.
		Handler:           tlsconf.WithConnState(h),
		ConnContext:       tlsconf.ConnContext,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(), // slow-header clients cannot hold connections
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout/WriteTimeout: SSE streams are long-lived. Bodies are
		// bounded by a per-request read deadline in the gateway instead
		// (server.body_read_timeout), set before authentication.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	scheme, serveLn := "http", ln
	if tlsSrv != nil {
		scheme, serveLn = "https", tlsSrv.Listener(ln)
	}
	fmt.Fprintf(stdout, "mcpedge %s listening on %s://%s/mcp\n", version, scheme, addr)
	if con != nil {
		fmt.Fprintf(stdout, "web console at %s://%s/ui/\n", scheme, addr)
	}
	if len(cfg.Upstreams) == 0 {
		fmt.Fprintf(stdout, "no upstreams configured: only the built-in tools (mcpedge__status, lattice__*) are served.\n"+
			"add MCP servers with a TOML file (mcpedge serve --config mcpedge.toml, see docs/configuration.md)\n"+
			"or reuse a desktop client's file (mcpedge serve --mcp-servers claude_desktop_config.json).\n")
	}
	log.Info("listening", "addr", addr, "scheme", scheme, "upstreams", len(cfg.Upstreams), "auth", cfg.Auth.Mode, "store", sec.Store.Kind(), "redis", sec.Redis != nil, "config", s.path)
	if tlsSrv != nil {
		log.Info(tlsconf.Describe(cfg.Server.TLS))
	}

	serveErr := make(chan error, 1)
	// Requests with ambiguous framing that net/http would accept are
	// marked for the gateway to refuse (gateway.FramingListener).
	go func() { serveErr <- srv.Serve(gateway.FramingListener(serveLn, srv.MaxHeaderBytes)) }()
	if tlsSrv != nil {
		// Certificate files are checked for changes; with ACME the
		// certificates are obtained now, and renewed.
		if err := tlsSrv.Start(ctx); err != nil {
			return err
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	reload := func(why string) {
		next, err := s.load()
		if err != nil {
			log.Error("reload failed; keeping the running configuration", "trigger", why, "err", err.Error())
			return
		}
		link.augment(next)
		if listen != "" {
			next.Server.Listen = cfg.Server.Listen // --listen wins over the file
		}
		if keys := config.RestartKeys(cfg, next); len(keys) > 0 {
			log.Warn(config.RestartMessage(keys), "keys", keys, "reloaded", config.LiveKeys())
		}
		added, removed, changed := g.Apply(ctx, next)
		lat.SetLimits(latticeLimits(next))
		sec.reconfigure(ctx, next, log)
		reloadTLS(tlsSrv, sec, next, log)
		log.Info("configuration reloaded", "trigger", why, "added", added, "removed", removed, "changed", changed)
	}
	var changes <-chan struct{}
	if s.path != "" {
		watched := []string{s.path}
		if s.servers != "" {
			watched = append(watched, s.servers) // --config with --mcp-servers: both files
		}
		changes = watchFiles(ctx, 2*time.Second, watched...)
	}
	for {
		select {
		case err := <-serveErr:
			stopQueue()
			stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
			g.Stop(stopCtx)
			stopCancel()
			return fmt.Errorf("serving: %w", err)
		case <-changes:
			reload("file change")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload("SIGHUP")
				continue
			}
			log.Info("shutting down", "signal", sig.String(), "grace", cfg.Server.ShutdownGrace.D())
			return shutdown(srv, g, cfg.Server.ShutdownGrace.D(), log, stopQueue)
		}
	}
}

// shutdown refuses new sessions and lets in-flight requests finish within
// grace — their clients can still reach the gateway, to answer an
// elicitation for example — then closes client sessions (ending their SSE
// streams), the listener and the connections, and stops upstreams. The
// offline queue's delivery loop stops (stopQueue) once the gateway has
// drained, before the upstreams it delivers to are stopped.
func shutdown(srv *http.Server, g *gateway.Gateway, grace time.Duration, log *slog.Logger, stopQueue func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	g.Drain(ctx)
	stopQueue()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 2*time.Second)
	g.CloseSessions(closeCtx)
	closeCancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer shutCancel()
	err := srv.Shutdown(shutCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("connections still open after the grace period; closing them")
		_ = srv.Close()
		err = nil
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	g.Stop(stopCtx)
	log.Info("stopped")
	return err
}

// watchFiles reports changes of the files' sizes or modification times.
// Polling keeps it portable and dependency-free; a reload is cheap and
// idempotent.
func watchFiles(ctx context.Context, every time.Duration, paths ...string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	type seen struct {
		mt time.Time
		sz int64
	}
	stat := func(path string) seen {
		fi, err := os.Stat(path)
		if err != nil {
			return seen{sz: -1}
		}
		return seen{fi.ModTime(), fi.Size()}
	}
	last := make([]seen, len(paths))
	for i, p := range paths {
		last[i] = stat(p)
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				for i, p := range paths {
					now := stat(p)
					if now.sz >= 0 && (!now.mt.Equal(last[i].mt) || now.sz != last[i].sz) {
						last[i] = now
						select {
						case ch <- struct{}{}:
						default:
						}
					}
				}
			}
		}
	}()
	return ch
}

func (a *app) stdioCmd() *cobra.Command {
	var cf *configFlags
	c := &cobra.Command{
		Use:   "stdio",
		Short: "Serve the aggregated catalog over stdio, for desktop clients",
		Long: `Serve the aggregated catalog of the configured upstreams over stdio (stdin and
stdout carry MCP), as one server a desktop client starts. Logs go to stderr.
Without a configuration only the built-in tools are served. On a first start
the owner API key is written to <data_dir>/owner-key (mode 0600), never to
stderr, which desktop clients keep in their log files.`,
		Example: "  mcpedge stdio --mcp-servers claude_desktop_config.json",
		Args:    posArgs(),
		RunE: func(c *cobra.Command, _ []string) error {
			s, cfg, err := cf.load()
			if err != nil {
				return err
			}
			if s.path == "" {
				fmt.Fprintln(a.stderr, "mcpedge stdio: no --config or --mcp-servers: only the built-in tools are served")
			}
			return stdio(c.Context(), cfg, a.stderr)
		},
	}
	cf = addConfigFlags(c)
	return c
}

// stdio serves MCP on stdin and stdout until they close or a signal
// comes.
func stdio(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	setVersions()
	log := telemetry.NewLogger(cfg.Server.LogLevel)
	useWASMCache(cfg, log)
	m := telemetry.NewMetrics()
	// stdout is the MCP stream: first-start notices go to stderr, and a
	// generated owner key to a file, since desktop clients keep stderr in
	// their log files.
	sec, closeSec, err := openSecurityFor(ctx, cfg, log, m.Registry, firstStart{Notice: stderr, KeyFile: true})
	if err != nil {
		return err
	}
	defer closeSec()
	g := gateway.New(cfg, log, m)
	// stdio is single-user: whoever started the process is the caller.
	g.SetCallAudit(sec.CallLog)
	if sec.Meter != nil {
		g.SetMeter(sec.Meter)
	}
	lcfg := *cfg
	lcfg.Auth.Mode = config.AuthOff
	g.AddBuiltin("lattice", latticesvc.NewMCPServer(newLatticeService(&lcfg, log, sec)))
	_, stopPins := startPins(ctx, g, sec, nil, m.Registry, log)
	defer stopPins()
	_, stopQuarantine := startQuarantine(ctx, g, sec, m.Registry, log)
	defer stopQuarantine()
	g.Start(ctx)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Give upstreams a moment so the first tools/list is complete; a slow
	// upstream joins later through list_changed.
	g.WaitAttempted(ctx, cfg.Server.RequestTimeout.D()/4)
	err = g.Aggregate().Run(ctx, &mcp.StdioTransport{})
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.Stop(stopCtx)
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (a *app) configCmd() *cobra.Command {
	var (
		cf     *configFlags
		asJSON bool
	)
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration and print every problem with file:line",
		Args:  posArgs(),
		RunE: func(*cobra.Command, []string) error {
			s, err := cf.source()
			if err != nil {
				return err
			}
			if s.path == "" {
				return cmdline.Usagef("config check needs --config FILE or --mcp-servers FILE")
			}
			cfg, err := s.load()
			if err != nil {
				return err
			}
			// The TLS files are read as `mcpedge serve` would read them.
			warnings, err := tlsconf.Check(cfg, time.Now())
			if err != nil {
				return fmt.Errorf("%s: %w", s.path, err)
			}
			names := make([]string, len(cfg.Upstreams))
			for i, u := range cfg.Upstreams {
				names[i] = u.Name
			}
			scheme := "http"
			if cfg.Server.TLS.Enabled() {
				scheme = "https"
			}
			if asJSON {
				return cmdline.PrintJSON(a.stdout, map[string]any{"file": s.path, "ok": true, "upstreams": names,
					"listen": scheme + "://" + cfg.Server.Listen, "warnings": warnings})
			}
			for _, w := range warnings {
				fmt.Fprintf(a.stdout, "%s: warning: %s\n", s.path, w)
			}
			fmt.Fprintf(a.stdout, "%s: ok (%d upstreams, listen %s://%s)\n", s.path, len(cfg.Upstreams), scheme, cfg.Server.Listen)
			return nil
		},
	}
	cf = addConfigFlags(check)
	jsonFlag(check, &asJSON)
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Print the TOML equivalent of an MCP client's configuration file",
		Long: `Print the [[upstreams]] of an MCP client's JSON configuration as TOML:
Claude Desktop's and Cursor's "mcpServers", VS Code's "servers" (with its
"inputs"), Claude Code's .mcp.json, Windsurf's, or a registry server.json
(docs/configuration.md).`,
		Example: "  mcpedge config import claude_desktop_config.json >> mcpedge.toml",
		Args:    posArgs("FILE"),
		RunE: func(_ *cobra.Command, args []string) error {
			im, err := config.ImportClientFile(args[0])
			if err != nil {
				return err
			}
			_, err = a.stdout.Write(im.TOML())
			return err
		},
	}
	return group("config", "Check a configuration, or import an MCP client's", check, imp)
}

// useWASMCache keeps compiled WASM tool modules in <data_dir>/wasm-cache, so
// that a restart does not compile them again (seconds per module, more on a
// small device). Without a data directory modules are compiled per process.
func useWASMCache(cfg *config.Config, log *slog.Logger) {
	if cfg.Server.DataDir == "" {
		return
	}
	dir := filepath.Join(cfg.Server.DataDir, "wasm-cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("WASM compilation cache unavailable; modules are compiled at every start", "dir", dir, "error", err)
		return
	}
	if err := wasmtool.UseCacheDir(dir); err != nil {
		log.Warn("WASM compilation cache unavailable; modules are compiled at every start", "dir", dir, "error", err)
	}
}

// loopbackListener reports whether ln accepts connections on a loopback
// address only; the gateway then answers only to loopback Host names.
func loopbackListener(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// runningUpstreams is admin.OpsOptions.Upstreams for a running gateway:
// the upstreams it runs now (reloads included).
func runningUpstreams(g *gateway.Gateway) func() []string {
	return func() []string {
		st := g.Statuses()
		names := make([]string, len(st))
		for i, s := range st {
			names[i] = s.Name
		}
		return names
	}
}

// keepSessions saves client sessions in the store, so that every replica
// sharing it serves any session and a restart ends none; with Redis, the
// replicas hear of each other's changes to a session at once
// (docs/design/sessions.md). A janitor purges expired sessions.
func keepSessions(ctx context.Context, g *gateway.Gateway, sec *securityStack, log *slog.Logger) {
	o := sessionstore.Options{OnError: func(what string, err error) { log.Warn("sessions: "+what, "err", err) }}
	var relay *sessionstore.RedisChanges
	if sec.Redis != nil {
		relay = sessionstore.NewRedisChanges(ctx, sec.Redis, log)
		o.Changes = relay
	}
	g.SetSessionKeeper(sessionstore.New(sec.Store, o))
	if relay != nil {
		g.SetAnswerRelay(relay)       // answers to a call's questions reach the replica running it
		g.SetContinuationRelay(relay) // 2026-07-28 input-required retries reach the replica running the call
	}
	go sessionstore.Purge(ctx, sec.Store, 10*time.Minute, func(err error) { log.Warn("sessions: purging expired sessions", "err", err) })
}
