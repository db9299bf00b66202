// Package config loads, validates and documents the mcpedge gateway
// configuration.
//
// The gateway is configured from a TOML file (see Load and Parse) or, to make
// migration easy, from the "mcpServers" JSON file that desktop MCP clients use
// (see LoadMCPServers and ParseMCPServers). Both paths produce the same
// *Config with every default applied, environment references expanded and
// every field validated, so the rest of the gateway never has to second-guess
// a value it receives from here.
//
// Loading never stops at the first mistake: a *Problems error lists every
// problem found, each with the file, line and column it comes from, because
// an operator fixing a config file one error per restart is a poor use of
// their time.
package config

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Defaults. They are exported so that other packages (flags, docs, tests) can
// refer to them instead of repeating magic numbers.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultAuthTokenEnv   = "MCPEDGE_AUTH_TOKEN"
	DefaultMaxBodyBytes   = int64(4 << 20)
	DefaultMaxJSONDepth   = 64
	DefaultRequestTimeout = Duration(60 * time.Second)
	DefaultShutdownGrace  = Duration(10 * time.Second)
	// DefaultReadHeaderTimeout and DefaultBodyReadTimeout bound how long a
	// client may take to send a request's headers and its body.
	DefaultReadHeaderTimeout = Duration(10 * time.Second)
	DefaultBodyReadTimeout   = Duration(30 * time.Second)
	DefaultLogLevel          = "info"
	DefaultPageSize          = 100
	DefaultUpstreamTimeout   = Duration(30 * time.Second)
	DefaultConnectTimeout    = Duration(10 * time.Second)
	// DefaultStartTimeout is the first-connect budget of an upstream whose
	// command is a package runner (npx, uvx, bunx, pnpx, pipx run, uv tool
	// run, docker/podman run, pnpm/yarn dlx, bun x) and that sets no
	// start_timeout: such a command may download and install the server
	// before it can answer initialize.
	DefaultStartTimeout = Duration(2 * time.Minute)

	// Lattice limits (the [lattice] table), the per-plan limits of the
	// built-in lattice engine until plans exist.
	DefaultLatticeMaxPoints             = int64(1) << 32
	DefaultLatticeMaxInlineBlockedCells = 1 << 16
	DefaultLatticeMaxPathPoints         = 1 << 16
	DefaultLatticeOperationTimeout      = Duration(10 * time.Second)
	DefaultLatticeMaxLattices           = 1000
	// MaxLatticePoints is the largest accepted lattice.max_points: the
	// engine's own ceiling (2^62).
	MaxLatticePoints = int64(1) << 62
	// MaxLatticeCountLimit bounds lattice.max_inline_blocked_cells and
	// lattice.max_path_points: both are lists carried in one JSON message.
	MaxLatticeCountLimit = 1 << 24
	// MaxLatticeLattices bounds lattice.max_lattices: every stored
	// definition is kept in memory and rewritten with the file.
	MaxLatticeLattices = 1000000

	// MaxNameLen bounds upstream names: they end up in tool names, log
	// lines and metric labels, where long names are a nuisance.
	MaxNameLen = 48
	// MaxJSONDepthLimit is the largest accepted max_json_depth. Deeper
	// documents are never legitimate MCP traffic and only serve to make
	// recursive decoders expensive.
	MaxJSONDepthLimit = 1000
)

// Transports an upstream can use.
const (
	TransportStdio = "stdio" // child process speaking MCP over stdin/stdout
	TransportHTTP  = "http"  // MCP streamable HTTP transport
	TransportSSE   = "sse"   // legacy HTTP+SSE transport (protocol 2024-11-05)
	// TransportWASM runs a WebAssembly (WASI preview 1) module inside the
	// gateway as a tool server; see Upstream.Module, Sandbox and
	// docs/wasm.md.
	TransportWASM = "wasm"
)

// Sandbox defaults and bounds of wasm upstreams ([upstreams.sandbox]).
const (
	DefaultSandboxMemoryMB     = 64
	DefaultSandboxTimeout      = Duration(5 * time.Second)
	DefaultSandboxMaxInstances = 4
	// MaxSandboxMemoryMB is the 4 GiB a 32-bit WebAssembly memory can
	// address at most.
	MaxSandboxMemoryMB = 4096
	// MaxSandboxMaxInstances bounds sandbox.max_instances: every instance
	// may hold memory_mb of memory.
	MaxSandboxMaxInstances = 1024
	// MaxModuleBytes bounds the size of a wasm module file, which is read
	// whole into memory to be hashed and compiled.
	MaxModuleBytes = 256 << 20
)

// Isolation modes of an upstream.
const (
	// IsolationShared uses one upstream connection (or child process) for
	// all client sessions. It is cheap, and right for stateless servers.
	IsolationShared = "shared"
	// IsolationSession gives every client session its own upstream
	// connection (or child process), for servers that keep per-client
	// state such as a browser, a working directory or a login.
	IsolationSession = "session"
)

// logLevels are the values accepted in log_level.
var logLevels = []string{"debug", "info", "warn", "error"}

// Config is the complete, validated gateway configuration.
type Config struct {
	Server    Server
	Upstreams []Upstream
	// Lattice holds the limits of the built-in lattice engine (toml
	// [lattice]).
	Lattice Lattice
	// Store, Redis, Auth, Plans, Limits and Audit are the multi-tenant
	// security settings (toml [store], [redis], [auth], [plans.NAME],
	// [limits], [audit]); see security.go.
	Store  Store
	Redis  Redis
	Auth   Auth
	Plans  map[string]Plan
	Limits Limits
	Audit  Audit
	// Metering is [metering]: usage metering of tool calls.
	Metering Metering
	// Webhooks is [webhooks]: delivery of events to subscribed endpoints.
	Webhooks Webhooks
	// Queue is the offline queue of `mcpedge serve` (toml [queue]); see
	// queue.go.
	Queue Queue
	// Backup is [backup]: scheduled backups (backup.go).
	Backup Backup
	// Hub makes the gateway an edge of a hub gateway (toml [hub]); see
	// hub.go and docs/hub.md.
	Hub Hub
	// HubServer configures the hub side (toml [hub_server]); see
	// hubserver.go and docs/hub.md.
	HubServer HubServer
	// Routing is the device-wide routing policy (toml [routing]); see
	// routing.go.
	Routing Routing
	// Device says where the device key lives (toml [device]); see
	// device.go and docs/device-identity.md.
	Device Device
	// Guard scans what a model reads from upstreams (toml [guard]); see
	// guard.go and docs/guardrails.md. Each upstream's effective settings
	// are in [Upstream.Guard].
	Guard Guard
	// Telemetry is [telemetry]: span export (tracing.go,
	// docs/design/tracing.md).
	Telemetry Telemetry
	// Billing bills tenants through Stripe (toml [billing]); see
	// billing.go and docs/design/billing.md.
	Billing Billing
	// Path is the file the configuration was loaded from, "" for the
	// embedded defaults. Hot reload re-reads this file.
	Path string
}

// Server holds the settings of the gateway's own listener.
type Server struct {
	// Listen is the host:port the gateway listens on (toml "listen").
	// It defaults to loopback so that a freshly installed gateway is not
	// reachable from the network by accident.
	Listen string
	// AuthTokenEnv names the environment variable holding the static
	// bearer token clients must present (toml "auth_token_env"). The token
	// itself never lives in the config file, which tends to be checked in
	// or world-readable. "" disables static-token authentication.
	AuthTokenEnv string
	// AllowedOrigins are Origin header values accepted in addition to
	// loopback origins (toml "allowed_origins"). Checking Origin is what
	// protects a local gateway from DNS-rebinding attacks by web pages.
	// Values are canonicalised to lower-case "scheme://host[:port]".
	AllowedOrigins []string
	// AllowedHosts are Host header values (host names, without port)
	// accepted in addition to loopback ones when the gateway listens on a
	// loopback address (toml "allowed_hosts"): the names under which a
	// reverse proxy on this machine forwards requests. Lower-cased.
	AllowedHosts []string
	// MaxBodyBytes bounds a request body (toml "max_body_bytes").
	MaxBodyBytes int64
	// MaxJSONDepth bounds the nesting depth of JSON messages
	// (toml "max_json_depth"), so hostile input cannot exhaust the stack
	// of recursive decoders.
	MaxJSONDepth int
	// RequestTimeout is the upper bound for one client request through the
	// gateway (toml "request_timeout").
	RequestTimeout Duration
	// ShutdownGrace is how long in-flight requests get to finish on
	// shutdown (toml "shutdown_grace").
	ShutdownGrace Duration
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers (toml "read_header_timeout").
	ReadHeaderTimeout Duration
	// BodyReadTimeout bounds how long a client may take to send a
	// request's body, counted from the end of its headers, on every
	// endpoint and whether or not the request is authenticated (toml
	// "body_read_timeout").
	BodyReadTimeout Duration
	// LogLevel is one of debug, info, warn, error (toml "log_level").
	LogLevel string
	// PageSize is the number of items per page the gateway serves on list
	// methods (toml "page_size").
	PageSize int
	// HotPath lets tools/call of session-era clients skip the SDK's
	// decoding and re-encoding (toml "hot_path", default true; see
	// docs/design/pipeline.md). Turning it off sends every call the SDK's
	// way: for comparing the two, or if an upstream misbehaves on it.
	HotPath bool
	// DataDir is where the gateway keeps its state, such as stored lattice
	// definitions (toml "data_dir"). It defaults to DefaultDataDir(); ""
	// turns persistence off. A relative path is resolved against the
	// config file's directory by Load (not by Parse).
	DataDir string
	// TLS terminates TLS on the listener (toml [server.tls]); see tls.go
	// and docs/deploy.md. Absent: plain HTTP.
	TLS TLS
}

// Lattice bounds what the built-in lattice engine may be asked to do; these
// are the per-plan limits until plans exist.
type Lattice struct {
	// MaxPoints caps the number of points of one lattice (toml
	// "max_points").
	MaxPoints int64
	// MaxInlineBlockedCells caps the explicit blocked-cell list of one
	// lattice definition (toml "max_inline_blocked_cells").
	MaxInlineBlockedCells int
	// MaxPathPoints caps the points of a returned path and of a point set
	// given to a transform; longer paths are reported by length only
	// (toml "max_path_points").
	MaxPathPoints int
	// OperationTimeout bounds one lattice operation (toml
	// "operation_timeout").
	OperationTimeout Duration
	// MaxLattices caps the number of stored lattice definitions (toml
	// "max_lattices"). 0 disables storing.
	MaxLattices int
}

// Upstream is one MCP server the gateway aggregates.
type Upstream struct {
	// Name identifies the upstream in logs, metrics and admin output and is
	// the default tool namespace. It matches ^[a-z0-9-]+$ and is at most
	// MaxNameLen bytes, so it is safe everywhere without quoting.
	Name string
	// DisplayName is a free-form human name (toml "display_name"). Imports
	// from mcpServers JSON keep the original server key here, since Name
	// may have had to be rewritten to be valid.
	DisplayName string
	// Transport is TransportStdio, TransportHTTP or TransportSSE. When the
	// file leaves it out it is inferred: stdio if command is set, http if
	// url is set.
	Transport string
	// Command, Args, Env and Dir describe the child process (stdio only).
	// Env values have ${VAR} references expanded. A relative Dir is
	// resolved against the config file's directory by Load and
	// LoadMCPServers (not by Parse, which has no file system context).
	Command string
	Args    []string
	Env     map[string]string
	Dir     string
	// InheritEnv names variables of the gateway's own environment that a
	// stdio child gets too (toml "inherit_env"), beyond the few every
	// child gets (PATH, HOME, locale, temporary directory; see
	// docs/configuration.md). The gateway's own variables — MCPEDGE_…
	// and those its settings name (auth_token_env, key_env,
	// bootstrap_key_env, bootstrap_password_env) — are refused.
	InheritEnv []string
	// URL is the server endpoint (http and sse only); Headers are sent with
	// every request to it. Both have ${VAR} references expanded, which is
	// how secrets such as bearer tokens stay out of the file.
	URL     string
	Headers map[string]string
	// AllowPrivate lists the address ranges an http or sse upstream may be
	// dialled at although they are not public: loopback (unless the URL's
	// host is itself loopback), private, CGNAT, link-local, metadata,
	// unique-local… (toml "allow_private", CIDRs or single addresses;
	// see docs/egress.md). Every address is normalized (IPv4-mapped IPv6
	// addresses unmapped) and masked.
	AllowPrivate []netip.Prefix
	// Prefix is the namespace for this upstream's tools and prompts: nil
	// means Name, "" means no namespacing. Use NamePrefix to read it.
	Prefix *string
	// Timeout bounds one request to this upstream (toml "timeout").
	Timeout Duration
	// ConnectTimeout bounds connecting plus the initialize handshake
	// (toml "connect_timeout").
	ConnectTimeout Duration
	// StartTimeout bounds the connects of a stdio upstream until it has
	// been ready once (toml "start_timeout"): the first start of a server
	// may include its download. 0 means DefaultStartTimeout for a package
	// runner command and ConnectTimeout for any other; see
	// [Upstream.EffectiveStartTimeout].
	StartTimeout Duration
	// FailureHandling holds the circuit breaker, retry and per-tool
	// timeout settings (toml "retries", "tool_timeouts",
	// [upstreams.breaker]); see failure.go.
	FailureHandling
	// Cache is the upstream's response cache (toml [upstreams.cache]); see
	// cache.go.
	Cache Cache
	// Isolation is IsolationShared or IsolationSession.
	Isolation string
	// Disabled upstreams are validated but not started. Keeping them in the
	// file lets an operator switch one off without losing its settings.
	Disabled bool
	// Module is the WebAssembly file of a wasm upstream (toml "module").
	// A relative path is resolved against the config file's directory by
	// Load (not by Parse).
	Module string
	// ModuleHash is the hex SHA-256 of Module's content when the
	// configuration was loaded. Load sets it ("" from Parse); it is part of
	// the Fingerprint, so a reload after the module file changed restarts
	// the upstream.
	ModuleHash string
	// Sandbox bounds what a wasm upstream's module may use (toml
	// [upstreams.sandbox]). It is the zero value for other transports.
	Sandbox Sandbox
	// Targets are the servers this upstream may route a call to (toml
	// [[upstreams.targets]]), in order of preference; empty: the upstream
	// is its own single target. Each is a full Upstream named
	// "<upstream>@<target>" with the upstream's settings and the target's
	// transport; see routing.go.
	Targets []Upstream
	// TargetName is a target's own name (toml targets[i].name); "" for an
	// upstream.
	TargetName string
	// Locality is LocalityLocal or LocalityRemote (toml "locality"); ""
	// in a file means inferred, see EffectiveLocality.
	Locality string
	// LocalOnly lists the upstream's tools whose calls never leave the
	// device (toml "local_only"; ["*"] for all): they go to local targets
	// only.
	LocalOnly []string
	// KeepCatalog keeps the upstream's last catalog listed while it is down
	// (toml "keep_catalog"); nil means the default, see KeepsCatalog.
	KeepCatalog *bool
	// GuardOverride is the upstream's [upstreams.guard] table as written,
	// and Guard the settings in effect: GuardOverride over [guard] (a
	// target has its upstream's). See guard.go.
	GuardOverride GuardOverride
	Guard         Guard
	// CheckArguments says whether the arguments of calls to the
	// upstream's tools are checked against their inputSchema before they
	// are sent (toml "check_arguments"); nil means the default, see
	// ChecksArguments. Turn it off for a server whose schemas are wrong.
	CheckArguments *bool
	// Pin is what the gateway does when a tool, prompt or resource
	// template of this upstream changes after it was first seen (toml
	// "pin"): PinHold, PinBlock, PinWarn or PinOff; "" means the
	// default, see EffectivePin. Tool pinning is described in
	// docs/guardrails.md.
	Pin string
	// TLS verifies the server of an http or sse upstream against extra
	// CAs and presents a client certificate (toml [upstreams.tls]);
	// targets inherit it. Certificates are always verified.
	TLS ClientTLS
}

// ChecksArguments reports whether calls to the upstream's tools have their
// arguments checked against the tool's inputSchema: unless
// check_arguments = false.
func (u Upstream) ChecksArguments() bool {
	return u.CheckArguments == nil || *u.CheckArguments
}

// Tool pinning policies (Upstream.Pin).
const (
	// PinHold keeps serving the pinned definition until an operator
	// approves the change (the default).
	PinHold = "hold"
	// PinBlock withholds the changed item until it is approved.
	PinBlock = "block"
	// PinWarn serves the new definition and only records the change.
	PinWarn = "warn"
	// PinOff does not pin.
	PinOff = "off"
)

// EffectivePin is the upstream's pinning policy: Pin, or PinHold when it
// is not set.
func (u Upstream) EffectivePin() string {
	if u.Pin == "" {
		return PinHold
	}
	return u.Pin
}

// KeepsCatalog reports whether the upstream's tools, prompts and resources
// stay listed while its connection is lost: when keep_catalog says so, and
// by default for an upstream with deferrable tools or a response cache —
// the tools whose calls can still be queued or answered from the cache
// while it is away.
func (u Upstream) KeepsCatalog() bool {
	if u.KeepCatalog != nil {
		return *u.KeepCatalog
	}
	return len(u.Deferrable) > 0 || u.Cache.Enabled()
}

// Sandbox is the resource and capability limits of a wasm upstream. Every
// tool call runs in a fresh instance of the module within these limits.
type Sandbox struct {
	// MemoryMB caps the linear memory of one instance, in MiB (toml
	// "memory_mb"); growing beyond it fails inside the module.
	MemoryMB int
	// Timeout bounds one run of the module, CPU and wall time (toml
	// "timeout"); a module still running then is stopped.
	Timeout Duration
	// Dirs are the only host directories the module can see (toml "dirs").
	Dirs []SandboxDir
	// Env is the module's environment allow-list (toml "env"): "NAME"
	// passes the gateway's own NAME through (left out when unset),
	// "NAME=value" sets a literal value. Nothing else is visible.
	Env []string
	// MaxInstances bounds how many instances run at once (toml
	// "max_instances"); further calls wait for a free slot. Memory use is
	// at most MaxInstances × MemoryMB.
	MaxInstances int
}

// SandboxDir is one directory a wasm module may use, written
// "host[:guest][:ro|:rw]" in the file.
type SandboxDir struct {
	// Host is the directory on the gateway's machine. Load makes a
	// relative path absolute against the config file's directory.
	Host string
	// Guest is where the module sees it, an absolute slash-separated
	// path; "" means the same path as Host.
	Guest string
	// Writable allows the module to create, change and delete files below
	// Host (":rw"); by default the directory is read-only.
	Writable bool
}

// NamePrefix returns the namespace for the upstream's tools and prompts: Name
// when Prefix is nil, else *Prefix (which may be "" for no namespacing).
func (u *Upstream) NamePrefix() string {
	if u.Prefix == nil {
		return u.Name
	}
	return *u.Prefix
}

// Fingerprint returns a stable hash of every field whose change requires
// reconnecting to the upstream: transport, command, args, env, inherit_env,
// dir, url, headers, allow_private, isolation and both timeouts, and for
// wasm upstreams the module path, its content hash and the sandbox. Hot
// reload compares fingerprints of same-named upstreams and keeps the
// sessions of those that did not change.
//
// Name, DisplayName, Prefix and Disabled are deliberately left out: renaming
// the namespace does not need a new connection, and the caller matches
// upstreams by Name and handles Disabled itself.
func (u Upstream) Fingerprint() string {
	k := newKeyHash()
	str, num := k.str, k.num
	strMap := func(m map[string]string) {
		keys := slices.Sorted(maps.Keys(m))
		num(int64(len(keys)))
		for _, key := range keys {
			str(key)
			str(m[key])
		}
	}
	str("mcpedge-upstream-v1")
	str(u.Transport)
	str(u.Command)
	num(int64(len(u.Args)))
	for _, a := range u.Args {
		str(a)
	}
	strMap(u.Env)
	str(u.Dir)
	str(u.URL)
	strMap(u.Headers)
	num(int64(len(u.InheritEnv)))
	for _, e := range u.InheritEnv {
		str(e)
	}
	num(int64(len(u.AllowPrivate)))
	for _, p := range u.AllowPrivate {
		str(p.String())
	}
	str(u.Isolation)
	str(u.Locality)
	if u.Guard != (Guard{}) {
		// Only when set, so that other fingerprints stay as they were.
		str("guard")
		str(u.Guard.Results)
		k.flag(u.Guard.PersonalData)
		str(u.Guard.Descriptions)
		if u.Guard.Rules != nil {
			str("rules")
			str(u.Guard.Rules.Digest)
		}
	}
	num(int64(u.Timeout))
	num(int64(u.ConnectTimeout))
	if u.StartTimeout != 0 {
		// Only when set, so that other fingerprints stay as they were.
		str("start_timeout")
		num(int64(u.StartTimeout))
	}
	// The wasm fields are hashed only for wasm upstreams, so the
	// fingerprints of the other transports do not depend on them.
	if u.Transport == TransportWASM {
		sb := u.Sandbox
		str(u.Module)
		str(u.ModuleHash)
		num(int64(sb.MemoryMB))
		num(int64(sb.Timeout))
		num(int64(sb.MaxInstances))
		num(int64(len(sb.Dirs)))
		for _, d := range sb.Dirs {
			str(d.Host)
			str(d.Guest)
			k.flag(d.Writable)
		}
		num(int64(len(sb.Env)))
		for _, e := range sb.Env {
			str(e)
		}
	}
	return k.sum()
}

// Default returns the embedded defaults: every server setting at its default
// and no upstreams. It is what an empty config file yields.
func Default() *Config {
	c := &Config{
		Server: Server{
			Listen:            DefaultListen,
			AuthTokenEnv:      DefaultAuthTokenEnv,
			MaxBodyBytes:      DefaultMaxBodyBytes,
			MaxJSONDepth:      DefaultMaxJSONDepth,
			RequestTimeout:    DefaultRequestTimeout,
			ShutdownGrace:     DefaultShutdownGrace,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			BodyReadTimeout:   DefaultBodyReadTimeout,
			LogLevel:          DefaultLogLevel,
			PageSize:          DefaultPageSize,
			HotPath:           true,
			DataDir:           DefaultDataDir(),
		},
		Lattice: Lattice{
			MaxPoints:             DefaultLatticeMaxPoints,
			MaxInlineBlockedCells: DefaultLatticeMaxInlineBlockedCells,
			MaxPathPoints:         DefaultLatticeMaxPathPoints,
			OperationTimeout:      DefaultLatticeOperationTimeout,
			MaxLattices:           DefaultLatticeMaxLattices,
		},
	}
	defaultSecurity(c)
	c.Queue = DefaultQueue()
	c.Backup = DefaultBackup()
	c.Hub = DefaultHub()
	c.Telemetry.Tracing = DefaultTracing()
	c.Routing = DefaultRouting()
	c.Device = DefaultDevice()
	return c
}

// DefaultDataDir is the default server.data_dir: $XDG_DATA_HOME/mcpedge
// when XDG_DATA_HOME is an absolute path (the XDG rule), else
// ~/.local/share/mcpedge, else "" (no home directory: persistence off).
func DefaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "mcpedge")
	}
	if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
		return filepath.Join(home, ".local", "share", "mcpedge")
	}
	return ""
}

// defaultUpstream returns an Upstream with every default that does not
// depend on other fields applied (Transport is inferred during validation).
func defaultUpstream() Upstream {
	return Upstream{
		Timeout:        DefaultUpstreamTimeout,
		ConnectTimeout: DefaultConnectTimeout,
		Isolation:      IsolationShared,
	}
}

// defaultSandbox returns the sandbox of a wasm upstream that sets nothing.
func defaultSandbox() Sandbox {
	return Sandbox{
		MemoryMB:     DefaultSandboxMemoryMB,
		Timeout:      DefaultSandboxTimeout,
		MaxInstances: DefaultSandboxMaxInstances,
	}
}

// ReservedNames are upstream names the gateway uses for its own built-in
// servers (and, for "mcpedge", its tool namespace); a configured upstream
// may not take them, so that /mcp/<name> and <name>__ always mean the same
// thing.
var ReservedNames = map[string]string{
	"mcpedge": "the gateway's own tools",
	"lattice": "the built-in lattice engine",
	"hub":     "the hub of an edge gateway ([hub] url)",
}
