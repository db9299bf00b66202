package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/egress"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9-]+$`)
	prefixRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]*$`)
)

// validate checks the decoded configuration, normalises a few values
// (transport, log level, origins) and infers the transport. Every problem is
// reported, located with the metadata collected while decoding.
func (d *decoder) validate(c *Config, sm serverMeta, metas []upstreamMeta) {
	d.validateServer(&c.Server, sm)
	d.ownEnv = ownSecretEnv(c)

	firstName := map[string]int{}
	firstPrefix := map[string]int{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		m := metas[i]
		d.validateUpstream(u, m)

		dupName := false
		if u.Name != "" {
			if j, dup := firstName[u.Name]; dup {
				dupName = true
				l, prev := m.loc("name"), metas[j].loc("name")
				d.add(l.pos, l.field, "duplicate name %q (first used by %s%s)", u.Name, prev.field, atLine(prev.pos))
			} else {
				firstName[u.Name] = i
			}
		}
		// Two enabled upstreams in one namespace would make tool routing
		// ambiguous. An empty prefix opts out of namespacing; collisions
		// between such upstreams can only be detected per tool at run time.
		if p := u.NamePrefix(); p != "" && !u.Disabled && !(dupName && u.Prefix == nil) {
			if j, dup := firstPrefix[p]; dup {
				l := m.loc("prefix")
				if u.Prefix == nil {
					l = m.loc("name")
				}
				prev := c.Upstreams[j]
				d.add(l.pos, l.field, "tool namespace %q is also used by upstream %q; set a distinct prefix", p, prev.Name)
			} else {
				firstPrefix[p] = i
			}
		}
	}
}

func atLine(p pos) string {
	if p.line == 0 {
		return ""
	}
	return ", line " + strconv.Itoa(p.line)
}

func (d *decoder) validateServer(s *Server, m serverMeta) {
	bad := func(key, format string, args ...any) {
		l := m.loc(key)
		d.add(l.pos, l.field, format, args...)
	}

	if err := checkListen(s.Listen); err != "" {
		bad("listen", "%s", err)
	}
	if s.AuthTokenEnv != "" && !validEnvName(s.AuthTokenEnv) {
		bad("auth_token_env", "%q is not a valid environment variable name (letters, digits and _, not starting with a digit); use \"\" to disable token authentication", truncate(s.AuthTokenEnv, 64))
	}
	for i, o := range s.AllowedOrigins {
		canon, err := canonicalOrigin(o)
		if err != "" {
			l := m.loc("allowed_origins")
			d.add(l.pos, indexField(l.field, i), "%s", err)
			continue
		}
		s.AllowedOrigins[i] = canon
	}
	for i, h := range s.AllowedHosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" || h == "*" || strings.ContainsAny(h, ":/@?# \t") {
			l := m.loc("allowed_hosts")
			d.add(l.pos, indexField(l.field, i), "%q is not a host name: give the name alone, without scheme, port or wildcard, e.g. \"mcp.example.com\"", truncate(h, 64))
			continue
		}
		s.AllowedHosts[i] = h
	}
	if s.MaxBodyBytes <= 0 {
		bad("max_body_bytes", "must be greater than 0, got %d", s.MaxBodyBytes)
	}
	if s.MaxJSONDepth < 1 || s.MaxJSONDepth > MaxJSONDepthLimit {
		bad("max_json_depth", "must be between 1 and %d, got %d", MaxJSONDepthLimit, s.MaxJSONDepth)
	}
	if s.RequestTimeout <= 0 {
		bad("request_timeout", "must be greater than 0, got %s", s.RequestTimeout)
	}
	if s.ShutdownGrace <= 0 {
		bad("shutdown_grace", "must be greater than 0, got %s", s.ShutdownGrace)
	}
	if s.ReadHeaderTimeout <= 0 {
		bad("read_header_timeout", "must be greater than 0, got %s", s.ReadHeaderTimeout)
	}
	if s.BodyReadTimeout <= 0 {
		bad("body_read_timeout", "must be greater than 0, got %s", s.BodyReadTimeout)
	}
	if lvl := strings.ToLower(s.LogLevel); slices.Contains(logLevels, lvl) {
		s.LogLevel = lvl
	} else {
		bad("log_level", "must be one of %s, got %q", strings.Join(logLevels, ", "), truncate(s.LogLevel, 64))
	}
	if s.PageSize <= 0 {
		bad("page_size", "must be greater than 0, got %d", s.PageSize)
	}
	if strings.ContainsRune(s.DataDir, 0) {
		bad("data_dir", "must not contain NUL bytes")
	}
	d.validateTLS(&s.TLS, m.tls)
}

func (d *decoder) validateLattice(l *Lattice, m latticeMeta) {
	bad := func(key, format string, args ...any) {
		lc := m.loc(key)
		d.add(lc.pos, lc.field, format, args...)
	}
	if l.MaxPoints < 1 || l.MaxPoints > MaxLatticePoints {
		bad("max_points", "must be between 1 and %d (2^62), got %d", MaxLatticePoints, l.MaxPoints)
	}
	if l.MaxInlineBlockedCells < 0 || l.MaxInlineBlockedCells > MaxLatticeCountLimit {
		bad("max_inline_blocked_cells", "must be between 0 and %d, got %d", MaxLatticeCountLimit, l.MaxInlineBlockedCells)
	}
	if l.MaxPathPoints < 1 || l.MaxPathPoints > MaxLatticeCountLimit {
		bad("max_path_points", "must be between 1 and %d, got %d", MaxLatticeCountLimit, l.MaxPathPoints)
	}
	if l.OperationTimeout <= 0 {
		bad("operation_timeout", "must be greater than 0, got %s", l.OperationTimeout)
	}
	if l.MaxLattices < 0 || l.MaxLattices > MaxLatticeLattices {
		bad("max_lattices", "must be between 0 and %d, got %d", MaxLatticeLattices, l.MaxLattices)
	}
}

func checkListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port, e.g. \"127.0.0.1:8080\" or \":8080\" (" + truncate(strconv.Quote(addr), 80) + ")"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "port must be a number from 0 to 65535, got " + truncate(strconv.Quote(port), 40)
	}
	if strings.ContainsAny(host, " \t\r\n/") {
		return "invalid host " + truncate(strconv.Quote(host), 80)
	}
	return ""
}

// canonicalOrigin checks that o is a browser Origin value
// (scheme://host[:port]) and returns it lower-cased, which is how browsers
// send it. Wildcards and "null" are refused: allowing them would re-open
// the cross-site and DNS-rebinding holes the Origin check exists to close.
func canonicalOrigin(o string) (string, string) {
	switch o {
	case "*":
		return "", `wildcard origins are not supported: list each allowed origin, e.g. "https://app.example.com"`
	case "null":
		return "", `the "null" origin (sandboxed frames, file: pages) cannot be allowed safely`
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return "", "invalid origin " + truncate(strconv.Quote(o), 80) + `: want scheme://host[:port], e.g. "https://app.example.com"`
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", "invalid origin " + truncate(strconv.Quote(o), 80) + ": an origin has no user info, path, query or fragment"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), ""
}

// normTransport maps the spellings found in the wild to the transport
// constants.
func normTransport(s string) (string, bool) {
	k := strings.ToLower(s)
	k = strings.ReplaceAll(k, "-", "")
	k = strings.ReplaceAll(k, "_", "")
	switch k {
	case "stdio":
		return TransportStdio, true
	case "http", "streamablehttp":
		return TransportHTTP, true
	case "sse":
		return TransportSSE, true
	}
	return "", false
}

func (d *decoder) validateUpstream(u *Upstream, m upstreamMeta) {
	bad := func(field, format string, args ...any) {
		l := m.loc(field)
		d.add(l.pos, l.field, format, args...)
	}

	// Settings that already failed to decode are not checked further:
	// "command is required" after "command: expected string" is noise.
	switch {
	case m.failed("name"):
	case u.Name == "":
		bad("name", "is required")
	case len(u.Name) > MaxNameLen:
		bad("name", "must be at most %d characters, got %d", MaxNameLen, len(u.Name))
	case !nameRE.MatchString(u.Name):
		bad("name", "%q must contain only lower-case letters, digits and -", truncate(u.Name, 64))
	case ReservedNames[u.Name] != "":
		bad("name", "%q is reserved for %s; choose another name", u.Name, ReservedNames[u.Name])
	}

	if _, routed := m.t.v.fields["targets"]; routed || len(u.Targets) > 0 {
		if u.Locality != "" {
			bad("locality", "is set per target when the upstream has [[upstreams.targets]]")
		}
		d.validateTargets(u, m)
	} else {
		d.validateTransport(u, m)
		switch u.Locality {
		case "", LocalityLocal, LocalityRemote:
		default:
			bad("locality", "must be %q or %q, got %q", LocalityLocal, LocalityRemote, truncate(u.Locality, 64))
		}
	}

	switch u.Pin {
	case "", PinHold, PinBlock, PinWarn, PinOff:
	default:
		bad("pin", "must be %q, %q, %q or %q, got %q", PinHold, PinBlock, PinWarn, PinOff, truncate(u.Pin, 64))
	}
	if u.Prefix != nil && !prefixRE.MatchString(*u.Prefix) {
		bad("prefix", "%q may contain only letters, digits, _, . and - (tool names allow nothing else)", truncate(*u.Prefix, 64))
	}
	if u.Timeout <= 0 {
		bad("timeout", "must be greater than 0, got %s", u.Timeout)
	}
	if u.ConnectTimeout <= 0 {
		bad("connect_timeout", "must be greater than 0, got %s", u.ConnectTimeout)
	}
	if u.StartTimeout < 0 {
		bad("start_timeout", "must be 0 (the default) or greater, got %s", u.StartTimeout)
	}
	switch u.Isolation {
	case IsolationShared, IsolationSession:
	default:
		bad("isolation", "must be %q or %q, got %q", IsolationShared, IsolationSession, truncate(u.Isolation, 64))
	}
	if m.tls != nil {
		d.validateClientTLS(&u.TLS, m.tls, m.loc("tls").field)
		if u.Transport != TransportHTTP && u.Transport != TransportSSE && len(u.Targets) == 0 && u.Transport != "" {
			bad("tls", "is only used by http and sse upstreams, not %s", u.Transport)
		}
	}
}

// transports lists the transport names the file's format accepts: the
// mcpServers JSON format has no module, so no wasm.
func (d *decoder) transports() string {
	if d.json {
		return "stdio, http, sse"
	}
	return "stdio, http, sse, wasm"
}

// validateTransport checks how an upstream (or one of its targets) is
// reached — transport, command, url, module and their companions — and
// infers the transport when the file leaves it out.
func (d *decoder) validateTransport(u *Upstream, m upstreamMeta) {
	bad := func(field, format string, args ...any) {
		l := m.loc(field)
		d.add(l.pos, l.field, format, args...)
	}
	hasCommand := u.Command != ""
	hasURL := u.URL != "" || m.unsetVars["url"]
	hasModule := u.Module != ""
	transportOK := !m.failed("transport") && !m.failed("command") && !m.failed("url") && !m.failed("module")
	switch {
	case !transportOK:
	case u.Transport != "":
		if t, ok := normTransport(u.Transport); ok {
			u.Transport = t
		} else if !d.json && strings.EqualFold(u.Transport, TransportWASM) {
			// TOML only: mcpServers JSON has no module key.
			u.Transport = TransportWASM
		} else {
			bad("transport", "must be one of %s; got %q", d.transports(), truncate(u.Transport, 64))
			transportOK = false
		}
	case hasCommand && hasURL:
		bad("transport", "both command and url are set: remove one, or set transport to say which is meant")
		transportOK = false
	case hasCommand:
		u.Transport = TransportStdio
	case hasURL:
		u.Transport = TransportHTTP
	case hasModule:
		u.Transport = TransportWASM
	default:
		if d.json {
			bad("command", "one of command (stdio) or url (http, sse) is required")
		} else {
			bad("command", "one of command (stdio), url (http, sse) or module (wasm) is required")
		}
		transportOK = false
	}

	if transportOK {
		switch u.Transport {
		case TransportStdio:
			if !hasCommand {
				bad("command", "is required for the stdio transport")
			}
			if hasURL {
				bad("url", "is not used by the stdio transport")
			}
			if u.Headers != nil {
				bad("headers", "are not used by the stdio transport")
			}
		case TransportWASM:
			d.validateWASM(u, m, hasCommand, hasURL)
		default:
			if !hasURL {
				bad("url", "is required for the %s transport", u.Transport)
			} else if !m.unsetVars["url"] {
				if msg := checkUpstreamURL(u.URL); msg != "" {
					bad("url", "%s", msg)
				} else if msg := refusedLiteral(u.URL, u.AllowPrivate); msg != "" && !m.failed("allow_private") {
					bad("url", "%s", msg)
				}
			}
			if hasCommand {
				bad("command", "is not used by the %s transport", u.Transport)
			}
			if u.Args != nil {
				bad("args", "are not used by the %s transport", u.Transport)
			}
			if u.Env != nil {
				bad("env", "is not used by the %s transport (it sets a child process's environment)", u.Transport)
			}
			if u.Dir != "" {
				bad("dir", "is not used by the %s transport", u.Transport)
			}
		}
		if m.has("inherit_env") && u.Transport != TransportStdio {
			bad("inherit_env", "is only used by the stdio transport (it names variables a child process inherits)")
		}
		if m.has("allow_private") && u.Transport != TransportHTTP && u.Transport != TransportSSE {
			bad("allow_private", "is only used by the http and sse transports (it allows the addresses they connect to)")
		}
		if u.Transport != TransportWASM {
			if hasModule {
				bad("module", "is only used by the wasm transport")
			}
			if m.sandboxT != nil {
				bad("sandbox", "is only used by the wasm transport")
			}
		}
	}

	// Strings that end up in exec or on the wire must not smuggle in NUL or
	// line breaks: exec rejects NUL late and confusingly, and CR/LF in a
	// header value would be header injection.
	if strings.ContainsRune(u.Command, 0) {
		bad("command", "must not contain NUL bytes")
	}
	for i, a := range u.Args {
		if strings.ContainsRune(a, 0) {
			l := m.elemLoc("args", i)
			d.add(l.pos, l.field, "must not contain NUL bytes")
		}
	}
	if strings.ContainsRune(u.Dir, 0) {
		bad("dir", "must not contain NUL bytes")
	}
	for _, k := range sortedKeys(u.Env) {
		l := m.keyLoc("env", k)
		if k == "" || strings.ContainsAny(k, "=\x00") {
			d.add(l.pos, l.field, "invalid environment variable name: must be non-empty without = or NUL")
		}
		if strings.ContainsRune(u.Env[k], 0) {
			d.add(l.pos, l.field, "value must not contain NUL bytes")
		}
	}
	for i, name := range u.InheritEnv {
		if msg := d.inheritProblem(name); msg != "" {
			l := m.elemLoc("inherit_env", i)
			d.add(l.pos, l.field, "%s", msg)
		}
	}
	for _, k := range sortedKeys(u.Headers) {
		l := m.keyLoc("headers", k)
		if !validHeaderName(k) {
			d.add(l.pos, l.field, "invalid HTTP header name")
		}
		if strings.ContainsAny(u.Headers[k], "\r\n\x00") {
			d.add(l.pos, l.field, "value must not contain CR, LF or NUL")
		}
	}
}

// checkUpstreamURL validates an (expanded) upstream URL: http or https,
// a host, no credentials, no host in a form resolvers read differently
// (egress.CheckURL). The URL itself is not quoted in messages because
// expansion may have put a secret into it.
func checkUpstreamURL(s string) string {
	if err := egress.CheckURL(s); err != nil {
		return err.Error()
	}
	return ""
}

// refusedLiteral says why an upstream URL whose host is an IP address the
// egress policy refuses (with the upstream's allow_private) cannot work,
// "" if it can or the host is a name (names are judged when they are
// resolved, at every connect).
func refusedLiteral(rawURL string, allow []netip.Prefix) string {
	pu, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	a, err := netip.ParseAddr(pu.Hostname())
	if err != nil {
		return ""
	}
	p := egress.ForUpstream("", rawURL, allow)
	if c, ok := p.Allowed(a); !ok {
		return fmt.Sprintf("points at %s (%s), which the gateway refuses to connect to; allow it with allow_private = [%q] if you mean it",
			egress.Normalize(a), c.Describe(), egress.HostPrefix(a).String())
	}
	return ""
}

// parseAllowPrivate reads one allow_private entry: a CIDR range or a single
// address, written in the standard form, masked, and not IPv4-mapped (the
// policy unmaps addresses before comparing them).
func parseAllowPrivate(s string) (netip.Prefix, string) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR range: write e.g. \"10.0.0.0/8\", \"fd00::/8\" or a single address", truncate(s, 64))
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 range: write the IPv4 range itself (addresses are compared after unmapping)", truncate(s, 64))
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Sprintf("%q has address bits set past its length: write %q", truncate(s, 64), p.Masked().String())
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if ip, ok := egress.ParseInetAton(s); ok {
			return netip.Prefix{}, fmt.Sprintf("%q is not an address in the standard form: write %q", truncate(s, 64), ip.String())
		}
		return netip.Prefix{}, fmt.Sprintf("%q is neither an IP address nor a CIDR range, e.g. \"10.0.0.0/8\"", truncate(s, 64))
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Sprintf("%q has a zone (%%%s): leave it out", truncate(s, 64), a.Zone())
	}
	if a.Is4In6() {
		return netip.Prefix{}, fmt.Sprintf("%q is an IPv4-mapped IPv6 address: write the IPv4 address %s itself", truncate(s, 64), a.Unmap())
	}
	return egress.HostPrefix(a), ""
}

// ownSecretEnv returns the environment variables the configuration names
// for the gateway's own secrets, with the setting that names each.
func ownSecretEnv(c *Config) map[string]string {
	own := map[string]string{}
	add := func(name, setting string) {
		if name != "" {
			own[name] = setting
		}
	}
	add(c.Server.AuthTokenEnv, "server.auth_token_env")
	storeKey := c.Store.KeyEnv
	if storeKey == "" {
		storeKey = DefaultStoreKeyEnv
	}
	add(storeKey, "store.key_env")
	add(c.Auth.BootstrapKeyEnv, "auth.bootstrap_key_env")
	add(c.Auth.BootstrapPasswordEnv, "auth.bootstrap_password_env")
	return own
}

// OwnEnvPrefix starts the names of the gateway's own environment
// variables; none of them ever reaches an upstream (inherit_env refuses
// them, and a stdio child's environment never takes them from the
// gateway's).
const OwnEnvPrefix = "MCPEDGE_"

// inheritProblem says what is wrong with an inherit_env entry, "" if
// nothing.
func (d *decoder) inheritProblem(name string) string {
	switch {
	case name == "" || strings.ContainsAny(name, "=\x00"):
		return "invalid environment variable name: must be non-empty without = or NUL"
	case strings.ContainsAny(name, "*?["):
		return fmt.Sprintf("%q: patterns are not supported; list each variable by name", truncate(name, 64))
	case len(name) >= len(OwnEnvPrefix) && strings.EqualFold(name[:len(OwnEnvPrefix)], OwnEnvPrefix):
		return fmt.Sprintf("%q is one of the gateway's own variables (%s…), which never pass to an upstream, so that no upstream can read the gateway's keys; give the upstream a credential of its own in env", truncate(name, 64), OwnEnvPrefix)
	case d.ownEnv[name] != "":
		return fmt.Sprintf("%q holds a secret of the gateway (%s names it), which never passes to an upstream; give the upstream a credential of its own in env", truncate(name, 64), d.ownEnv[name])
	}
	return ""
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
