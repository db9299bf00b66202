package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/sessionstore"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/mcpedge/mcpedge/internal/wasmtool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// source says where the configuration comes from, so it can be reloaded.
type source struct {
	path       string
	mcpServers bool
}

func (s source) load() (*config.Config, error) {
	switch {
	case s.path == "":
		return config.Default(), nil
	case s.mcpServers:
		return config.LoadMCPServers(s.path)
	default:
		return config.Load(s.path)
	}
}

func configFlags(fs *flag.FlagSet) func() (source, error) {
	cfgPath := fs.String("config", "", "TOML configuration `file`")
	mcpServers := fs.String("mcp-servers", "", "desktop-client JSON `file` with an \"mcpServers\" object")
	return func() (source, error) {
		if *cfgPath != "" && *mcpServers != "" {
			return source{}, usageError{errors.New("--config and --mcp-servers cannot be used together")}
		}
		if *mcpServers != "" {
			return source{path: *mcpServers, mcpServers: true}, nil
		}
		return source{path: *cfgPath}, nil
	}
}

// parseAndLoad parses a command's flags and loads the configuration they name.
func parseAndLoad(fs *flag.FlagSet, args []string, src func() (source, error)) (source, *config.Config, error) {
	if err := fs.Parse(args); err != nil {
		return source{}, nil, err
	}
	s, err := src()
	if err != nil {
		return source{}, nil, err
	}
	cfg, err := s.load()
	return s, cfg, err
}

func setVersions() {
	gateway.Version = version
	upstream.Version = version
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := configFlags(fs)
	listen := fs.String("listen", "", "override server.listen (`host:port`)")
	s, cfg, err := parseAndLoad(fs, args, src)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Server.Listen = *listen
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
	sec, closeSec, err := openSecurityFor(ctx, cfg, log, m.Registry, stdout)
	if err != nil {
		return err
	}
	defer closeSec()
	if sec.EKRoots, err = loadEKRoots(cfg); err != nil {
		return err
	}
	link, err := startEdge(ctx, cfg, sec, m, log) // [hub] url: adds the hub's upstream to cfg
	if err != nil {
		return err
	}
	defer link.Close()
	g := gateway.New(cfg, log, m)
	if sec.Layer != nil {
		g.SetSecurity(sec.Layer)
	} else {
		// Single-user mode: tool calls are audited all the same.
		g.SetCallAudit(sec.CallLog)
	}
	keepSessions(ctx, g, sec, log)
	lat := newLatticeService(cfg, log, sec)
	g.AddBuiltin("lattice", latticesvc.NewMCPServer(lat))
	stopQueue, queueReader := startQueue(ctx, cfg, g, log, m.Registry)
	defer stopQueue()
	pins, stopPins := startPins(ctx, g, sec, m.Registry, log)
	defer stopPins()
	if cfg.Server.DataDir != "" {
		g.SetCatalogDir(filepath.Join(cfg.Server.DataDir, "catalogs")) // keep_catalog survives a restart
	}
	g.Start(ctx)
	ho := gateway.HTTPOptions{
		Token: token, AllowedOrigins: cfg.Server.AllowedOrigins,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxJSONDepth: cfg.Server.MaxJSONDepth,
		BodyReadTimeout: cfg.Server.BodyReadTimeout.D(),
		LoopbackOnly:    loopbackListener(ln),
		AllowedHosts:    cfg.Server.AllowedHosts,
		API:             adminAPI(cfg, sec, lat, log, queueReader, pins),
	}
	if sec.Layer == nil {
		ho.Anonymous = sec.anonymous()
	}
	h := g.Handler(ho)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(), // slow-header clients cannot hold connections
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout/WriteTimeout: SSE streams are long-lived. Bodies are
		// bounded by a per-request read deadline in the gateway instead
		// (server.body_read_timeout), set before authentication.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "mcpedge %s listening on http://%s/mcp\n", version, addr)
	if len(cfg.Upstreams) == 0 {
		fmt.Fprintf(stdout, "no upstreams configured: only the built-in tools (mcpedge__status, lattice__*) are served.\n"+
			"add MCP servers with a TOML file (mcpedge serve --config mcpedge.toml, see docs/configuration.md)\n"+
			"or reuse a desktop client's file (mcpedge serve --mcp-servers claude_desktop_config.json).\n")
	}
	log.Info("listening", "addr", addr, "upstreams", len(cfg.Upstreams), "auth", cfg.Auth.Mode, "store", sec.Store.Kind(), "redis", sec.Redis != nil, "config", s.path)

	serveErr := make(chan error, 1)
	// Requests with ambiguous framing that net/http would accept are
	// marked for the gateway to refuse (gateway.FramingListener).
	go func() { serveErr <- srv.Serve(gateway.FramingListener(ln, srv.MaxHeaderBytes)) }()

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
		if *listen != "" {
			next.Server.Listen = cfg.Server.Listen // --listen wins over the file
		}
		if keys := config.RestartKeys(cfg, next); len(keys) > 0 {
			log.Warn(restartMessage(keys), "keys", keys, "reloaded", config.LiveKeys())
		}
		added, removed, changed := g.Apply(ctx, next)
		lat.SetLimits(latticeLimits(next))
		if err := sec.Policy.SetPlans(ctx, next.Plans); err != nil {
			log.Error("plans not reloaded; the running plans stay", "err", err.Error())
		}
		sec.CallLog.SetArguments(next.Audit.Arguments)
		log.Info("configuration reloaded", "trigger", why, "added", added, "removed", removed, "changed", changed)
	}
	var changes <-chan struct{}
	if s.path != "" {
		changes = watchFile(ctx, s.path, 2*time.Second)
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

// watchFile reports changes of a file's size or modification time. Polling
// keeps it portable and dependency-free; a reload is cheap and idempotent.
func watchFile(ctx context.Context, path string, every time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	stat := func() (time.Time, int64) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1
		}
		return fi.ModTime(), fi.Size()
	}
	mt, sz := stat()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m2, s2 := stat()
				if s2 >= 0 && (!m2.Equal(mt) || s2 != sz) {
					mt, sz = m2, s2
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return ch
}

func cmdStdio(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("stdio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := configFlags(fs)
	_, cfg, err := parseAndLoad(fs, args, src)
	if err != nil {
		return err
	}
	setVersions()
	log := telemetry.NewLogger(cfg.Server.LogLevel)
	useWASMCache(cfg, log)
	m := telemetry.NewMetrics()
	// stdout is the MCP stream: first-start notices go to stderr.
	sec, closeSec, err := openSecurityFor(ctx, cfg, log, m.Registry, stderr)
	if err != nil {
		return err
	}
	defer closeSec()
	g := gateway.New(cfg, log, m)
	// stdio is single-user: whoever started the process is the caller.
	g.SetCallAudit(sec.CallLog)
	lcfg := *cfg
	lcfg.Auth.Mode = config.AuthOff
	g.AddBuiltin("lattice", latticesvc.NewMCPServer(newLatticeService(&lcfg, log, sec)))
	_, stopPins := startPins(ctx, g, sec, m.Registry, log)
	defer stopPins()
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

func cmdConfigCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stdout)
	src := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := src()
	if err != nil {
		return err
	}
	if s.path == "" {
		return usageError{errors.New("config check needs --config FILE or --mcp-servers FILE")}
	}
	cfg, err := s.load()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d upstreams, listen %s)\n", s.path, len(cfg.Upstreams), cfg.Server.Listen)
	return nil
}

// restartMessage says which tables changed in ways only a restart
// applies, e.g. "[store], [queue] changed; restart to apply them: store.url,
// queue.max_entries (upstreams, lattice, routing, plans and audit.arguments
// are reloaded now)".
func restartMessage(keys []string) string {
	var tables []string
	for _, k := range keys {
		t := "[" + strings.SplitN(k, ".", 2)[0] + "]"
		if !slices.Contains(tables, t) {
			tables = append(tables, t)
		}
	}
	return fmt.Sprintf("%s changed; restart to apply them: %s (%s are reloaded now)",
		strings.Join(tables, ", "), strings.Join(keys, ", "), strings.Join(config.LiveKeys(), ", "))
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
		g.SetAnswerRelay(relay) // answers to a call's questions reach the replica running it
	}
	go sessionstore.Purge(ctx, sec.Store, 10*time.Minute, func(err error) { log.Warn("sessions: purging expired sessions", "err", err) })
}
