package config

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Load reads the TOML configuration file at path, applies defaults, expands
// ${VAR} references and validates it. A file that cannot be read yields the
// *fs.PathError from the operating system; a file with mistakes yields a
// *Problems listing all of them. A relative upstream dir is resolved against
// the directory of path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Unlike Parse, Load checks the files a wasm upstream names (the
	// module and its sandbox directories), relative to the file's directory.
	c, err := parseTOMLIn(path, data, os.LookupEnv, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	resolveDirs(c, path)
	return c, nil
}

// Parse is Load without the file system: it decodes TOML from data. path
// is only used in problem messages and as Config.Path.
func Parse(path string, data []byte) (*Config, error) {
	return parseTOML(path, data, os.LookupEnv)
}

func parseTOML(path string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	return parseTOMLIn(path, data, lookup, "")
}

// parseTOMLIn is parseTOML that also checks, when base is not "", the files
// wasm upstreams name, with relative paths resolved against base.
func parseTOMLIn(path string, data []byte, lookup func(string) (string, bool), base string) (*Config, error) {
	d := &decoder{file: path, lookup: lookup, base: base}
	root, ok := d.tomlTree(data)
	if !ok {
		return nil, &d.probs
	}
	c := d.decodeTOML(root)
	c.Path = path
	if len(d.probs) > 0 {
		sortProblems(d.probs)
		return nil, &d.probs
	}
	return c, nil
}

// tomlTree decodes data into a positioned tree. go-toml does the actual
// decoding, which enforces all of TOML's rules (duplicate keys, table
// redefinition...) and reports the first syntax error with its position.
// A second pass over go-toml's AST then records where every key and table
// header is, which the decoded maps cannot tell.
func (d *decoder) tomlTree(data []byte) (*val, bool) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			d.add(pos{line, col}, "", "%s", strings.TrimPrefix(de.Error(), "toml: "))
		} else {
			d.add(pos{}, "", "%s", strings.TrimPrefix(err.Error(), "toml: "))
		}
		return nil, false
	}
	idx := indexTOML(data)
	root := tomlVal(doc, tpath{}, idx, pos{1, 1})
	if root.kind != kTable {
		// Cannot happen for a successful decode into a map, but the
		// interpreter relies on a table root.
		root = newTable(pos{1, 1})
	}
	return root, true
}

// tomlVal converts a go-toml decoded value at path into a *val. Below
// maxTreeDepth only the kind of a value is kept: nothing that deep is ever
// interpreted, and copying it would let a pathological file (a key with
// thousands of dotted parts) cost quadratic time.
func tomlVal(v any, path tpath, idx tomlIndex, fallback pos) *val {
	p, ok := idx.pos[path.s]
	if !ok {
		p = fallback
	}
	deep := path.depth >= maxTreeDepth
	switch x := v.(type) {
	case map[string]any:
		t := newTable(p)
		if deep {
			return t
		}
		for k, e := range x {
			kp := path.key(k)
			keyPos, ok := idx.pos[kp.s]
			if !ok {
				keyPos = p
			}
			t.set(k, keyPos, tomlVal(e, kp, idx, keyPos))
		}
		t.sortKeysByPos()
		return t
	case []any:
		a := &val{kind: kArray, pos: p}
		if deep {
			return a
		}
		for i, e := range x {
			a.arr = append(a.arr, tomlVal(e, path.index(i), idx, p))
		}
		return a
	case []map[string]any:
		a := &val{kind: kArray, pos: p}
		if deep {
			return a
		}
		for i, e := range x {
			a.arr = append(a.arr, tomlVal(e, path.index(i), idx, p))
		}
		return a
	case string:
		return &val{kind: kString, pos: p, str: x}
	case int64:
		return &val{kind: kInt, pos: p, i: x}
	case float64:
		return &val{kind: kFloat, pos: p, f: x}
	case bool:
		return &val{kind: kBool, pos: p, b: x}
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		return &val{kind: kDatetime, pos: p}
	default:
		return &val{kind: kNull, pos: p}
	}
}

// maxTreeDepth is how many path segments deep positions are indexed and
// values converted. The deepest setting is upstreams[i].env.KEY (4).
const maxTreeDepth = 8

// tpath is a path in the position index: key segments are "\x00k" + key,
// array indexes "\x00#" + index, so keys and indexes cannot be confused.
// Past maxTreeDepth the string stops growing, which keeps the cost of
// absurdly deep documents linear; positions that deep are never asked for.
type tpath struct {
	s     string
	depth int
}

func (p tpath) key(k string) tpath {
	if p.depth >= maxTreeDepth {
		return tpath{p.s, p.depth + 1}
	}
	return tpath{p.s + "\x00k" + k, p.depth + 1}
}

func (p tpath) index(i int) tpath {
	if p.depth >= maxTreeDepth {
		return tpath{p.s, p.depth + 1}
	}
	return tpath{p.s + "\x00#" + strconv.Itoa(i), p.depth + 1}
}

// tomlIndex maps paths of keys, table headers and array elements to where
// they appear in the document.
type tomlIndex struct {
	pos map[string]pos
	// arrays counts the elements of each array of tables ([[x]]) seen so
	// far, keyed by resolved path.
	arrays map[string]int
}

func indexTOML(data []byte) tomlIndex {
	idx := tomlIndex{pos: map[string]pos{}, arrays: map[string]int{}}
	li := newLineIndex(data)
	var p unstable.Parser
	p.Reset(data)
	at := func(n *unstable.Node) (pos, bool) {
		if n == nil || n.Raw.Length == 0 {
			return pos{}, false
		}
		return li.pos(int(n.Raw.Offset)), true
	}
	record := func(path string, ps pos) {
		if _, dup := idx.pos[path]; !dup {
			idx.pos[path] = ps
		}
	}

	var recordValue func(path tpath, v *unstable.Node)
	// recordKV records a key/value relative to the table at base.
	recordKV := func(base tpath, kv *unstable.Node) {
		path := base
		it := kv.Key()
		for it.Next() && path.depth < maxTreeDepth {
			k := it.Node()
			path = path.key(string(k.Data))
			if ps, ok := at(k); ok {
				record(path.s, ps)
			}
		}
		recordValue(path, kv.Value())
	}
	recordValue = func(path tpath, v *unstable.Node) {
		if v == nil || path.depth >= maxTreeDepth {
			return
		}
		switch v.Kind {
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				if c := it.Node(); c.Kind == unstable.KeyValue {
					recordKV(path, c)
				}
			}
		case unstable.Array:
			i := 0
			it := v.Children()
			for it.Next() {
				c := it.Node()
				if c.Kind == unstable.Comment {
					continue
				}
				ep := path.index(i)
				if ps, ok := at(c); ok {
					record(ep.s, ps)
				}
				recordValue(ep, c)
				i++
			}
		}
	}

	// headerPos points at the "[" of a table header rather than at its
	// first key.
	headerPos := func(n *unstable.Node) pos {
		k := n.Child()
		if k == nil || k.Raw.Length == 0 {
			return pos{}
		}
		off := int(k.Raw.Offset)
		for off > 0 && (data[off-1] == '[' || data[off-1] == ' ' || data[off-1] == '\t') {
			off--
		}
		return li.pos(off)
	}

	var cur tpath // the table the following key/values belong to
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			recordKV(cur, e)
		case unstable.Table, unstable.ArrayTable:
			var keys []string
			it := e.Key()
			for it.Next() && len(keys) <= maxTreeDepth {
				keys = append(keys, string(it.Node().Data))
			}
			if len(keys) == 0 {
				continue
			}
			// Resolve every prefix that names an array of tables to its
			// latest element, as TOML does: [a.b] after [[a]] means the
			// last a.
			var path tpath
			for i, k := range keys {
				path = path.key(k)
				n, isArray := idx.arrays[path.s]
				last := i == len(keys)-1
				switch {
				case last && e.Kind == unstable.ArrayTable:
					idx.arrays[path.s] = n + 1
					path = path.index(n)
				case isArray && n > 0:
					path = path.index(n - 1)
				}
			}
			record(path.s, headerPos(e))
			cur = path
		}
	}
	return idx
}

var (
	serverKeys   = []string{"listen", "auth_token_env", "allowed_origins", "allowed_hosts", "max_body_bytes", "max_json_depth", "request_timeout", "shutdown_grace", "read_header_timeout", "body_read_timeout", "log_level", "page_size", "hot_path", "data_dir", "tls"}
	latticeKeys  = []string{"max_points", "max_inline_blocked_cells", "max_path_points", "operation_timeout", "max_lattices"}
	upstreamKeys = []string{"name", "display_name", "transport", "command", "args", "env", "inherit_env", "dir", "url", "headers", "allow_private", "prefix", "timeout", "connect_timeout", "start_timeout", "isolation", "disabled", "module", "sandbox", "retries", "breaker", "tool_timeouts", "cache", "deferrable", "targets", "locality", "local_only", "keep_catalog", "check_arguments", "guard", "pin", "tls"}
)

// decodeTOML interprets the document tree. Problems are collected in d; the
// returned Config is only meaningful if there are none.
func (d *decoder) decodeTOML(root *val) *Config {
	c := Default()
	top := d.table(root, "")
	var sm serverMeta
	if v := top.get("server"); v != nil {
		if v.kind != kTable {
			top.typeErr("server", v, "table ([server])")
		} else {
			sm = d.decodeServer(d.table(v, "server"), &c.Server)
		}
	}
	var lm latticeMeta
	if v := top.get("lattice"); v != nil {
		if v.kind != kTable {
			top.typeErr("lattice", v, "table ([lattice])")
		} else {
			lm = d.decodeLattice(d.table(v, "lattice"), &c.Lattice)
		}
	}
	var metas []upstreamMeta
	if v := top.get("upstreams"); v != nil {
		if v.kind != kArray {
			l := top.loc("upstreams")
			d.add(l.pos, l.field, "expected an array of tables ([[upstreams]]), got %s", d.kindName(v.kind))
		} else {
			for i, e := range v.arr {
				f := indexField("upstreams", i)
				if e.kind != kTable {
					d.add(e.pos, f, "expected table, got %s", d.kindName(e.kind))
					continue
				}
				u, m := d.decodeUpstream(d.table(e, f))
				c.Upstreams = append(c.Upstreams, u)
				metas = append(metas, m)
			}
		}
	}
	d.decodeRouting(top, c)
	d.decodeGuard(top, c)
	secm := d.decodeSecurity(top, c)
	qt := d.decodeQueue(top, c)
	ht := d.decodeHub(top, c)
	dt := d.decodeDevice(top, c)
	hst := d.decodeHubServer(top, c)
	bt := d.decodeBackup(top, c)
	d.decodeTelemetry(top, c)
	bm := d.decodeBilling(top, c)
	top.unknown(append([]string{"server", "upstreams", "lattice", "queue", "hub", "hub_server", "routing", "device", "guard", "backup", "telemetry", "billing"}, securityTables...))
	d.validate(c, sm, metas)
	d.validateLattice(&c.Lattice, lm)
	d.validateSecurity(c, secm)
	d.validateQueue(c, qt)
	d.validateHub(c, ht)
	d.validateDevice(c, dt)
	d.validateHubServer(c, hst)
	d.validateBackup(c, bt)
	d.validateBilling(c, bm)
	return c
}

// serverMeta locates server settings for validation.
type serverMeta struct {
	t   *table
	tls tlsMeta
}

func (m serverMeta) loc(key string) loc {
	if m.t == nil {
		return loc{field: "server." + key}
	}
	return m.t.loc(key)
}

func (d *decoder) decodeServer(t *table, s *Server) serverMeta {
	t.str("listen", &s.Listen)
	t.str("auth_token_env", &s.AuthTokenEnv)
	t.strList("allowed_origins", &s.AllowedOrigins)
	t.strList("allowed_hosts", &s.AllowedHosts)
	t.integer("max_body_bytes", &s.MaxBodyBytes)
	var n int64
	if t.integer("max_json_depth", &n) {
		s.MaxJSONDepth = clampInt(n)
	}
	if t.integer("page_size", &n) {
		s.PageSize = clampInt(n)
	}
	t.duration("request_timeout", &s.RequestTimeout)
	t.duration("shutdown_grace", &s.ShutdownGrace)
	t.duration("read_header_timeout", &s.ReadHeaderTimeout)
	t.duration("body_read_timeout", &s.BodyReadTimeout)
	t.str("log_level", &s.LogLevel)
	t.boolean("hot_path", &s.HotPath)
	t.str("data_dir", &s.DataDir)
	tm := d.decodeTLS(t, &s.TLS)
	t.unknown(serverKeys)
	return serverMeta{t: t, tls: tm}
}

// latticeMeta locates lattice settings for validation.
type latticeMeta struct{ t *table }

func (m latticeMeta) loc(key string) loc {
	if m.t == nil {
		return loc{field: "lattice." + key}
	}
	return m.t.loc(key)
}

func (d *decoder) decodeLattice(t *table, l *Lattice) latticeMeta {
	t.integer("max_points", &l.MaxPoints)
	var n int64
	if t.integer("max_inline_blocked_cells", &n) {
		l.MaxInlineBlockedCells = clampInt(n)
	}
	if t.integer("max_path_points", &n) {
		l.MaxPathPoints = clampInt(n)
	}
	if t.integer("max_lattices", &n) {
		l.MaxLattices = clampInt(n)
	}
	t.duration("operation_timeout", &l.OperationTimeout)
	t.unknown(latticeKeys)
	return latticeMeta{t}
}

// clampInt converts to int without wrapping on 32-bit platforms; the range
// checks in validate then report out-of-range values.
func clampInt(n int64) int {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	}
	return int(n)
}

// upstreamMeta locates an upstream's settings for validation.
type upstreamMeta struct {
	t *table
	// rename maps field names to the keys the file format uses for them
	// (mcpServers says "type" where TOML says "transport").
	rename map[string]string
	// unsetVars records settings whose ${VAR} references could not be
	// resolved: they are already reported and not validated further.
	unsetVars map[string]bool
	// sandbox is [upstreams.sandbox] with defaults applied, and sandboxT
	// its table (nil when absent); validation gives it to wasm upstreams.
	sandbox  Sandbox
	sandboxT *table
	// target is set for a [[upstreams.targets]] table; targets holds the
	// metas of an upstream's targets.
	target  bool
	targets []upstreamMeta
	// tls is the upstream's [upstreams.tls] table, nil when absent.
	tls *table
}

func (m upstreamMeta) loc(field string) loc {
	if k, ok := m.rename[field]; ok {
		field = k
	}
	return m.t.loc(field)
}

// has reports whether field is present in the upstream's table.
func (m upstreamMeta) has(field string) bool {
	if k, ok := m.rename[field]; ok {
		field = k
	}
	return m.t.v.fields[field] != nil
}

// failed reports whether field was present but could not be decoded.
func (m upstreamMeta) failed(field string) bool {
	if k, ok := m.rename[field]; ok {
		field = k
	}
	return m.t.bad[field]
}

// keyLoc locates key inside the sub-table field (such as env or headers).
func (m upstreamMeta) keyLoc(field, key string) loc {
	l := m.loc(field)
	l.field = joinField(l.field, key)
	if k, ok := m.rename[field]; ok {
		field = k
	}
	if sub := m.t.v.fields[field]; sub != nil && sub.kind == kTable {
		if p, ok := sub.keyPos[key]; ok {
			l.pos = p
		}
	}
	return l
}

// elemLoc locates element i of the array field.
func (m upstreamMeta) elemLoc(field string, i int) loc {
	l := m.loc(field)
	l.field = indexField(l.field, i)
	if k, ok := m.rename[field]; ok {
		field = k
	}
	if a := m.t.v.fields[field]; a != nil && a.kind == kArray && i < len(a.arr) && a.arr[i].pos.line > 0 {
		l.pos = a.arr[i].pos
	}
	return l
}

// decodeTransportFields reads how an upstream (or a target) is reached:
// transport, command, args, dir, env, url and headers, with ${VAR}
// references expanded (tolerated when unset for a disabled upstream).
func (d *decoder) decodeTransportFields(t *table, u *Upstream, m *upstreamMeta, disabled bool) {
	t.str("transport", &u.Transport)
	t.str("command", &u.Command)
	t.strList("args", &u.Args)
	t.str("dir", &u.Dir)
	if _, unset := t.strMap("env", &u.Env, true, disabled); unset {
		m.unsetVars["env"] = true
	}
	if t.str("url", &u.URL) {
		l := t.loc("url")
		var unset bool
		u.URL, unset = d.expand(u.URL, l.pos, l.field, disabled)
		m.unsetVars["url"] = unset
	}
	if _, unset := t.strMap("headers", &u.Headers, true, disabled); unset {
		m.unsetVars["headers"] = true
	}
	d.decodeEgressFields(t, u, m)
}

// decodeEgressFields reads what an upstream may reach beyond its own
// connection: inherit_env (stdio) and allow_private (http, sse). The
// allow_private ranges are parsed here, where each can be located.
func (d *decoder) decodeEgressFields(t *table, u *Upstream, m *upstreamMeta) {
	t.strList("inherit_env", &u.InheritEnv)
	var allow []string
	if !t.strList("allow_private", &allow) {
		return
	}
	u.AllowPrivate = make([]netip.Prefix, 0, len(allow))
	for i, s := range allow {
		p, msg := parseAllowPrivate(s)
		if msg != "" {
			l := m.elemLoc("allow_private", i)
			d.add(l.pos, l.field, "%s", msg)
			t.bad["allow_private"] = true
			continue
		}
		u.AllowPrivate = append(u.AllowPrivate, p)
	}
}

func (d *decoder) decodeUpstream(t *table) (Upstream, upstreamMeta) {
	u := defaultUpstream()
	m := upstreamMeta{t: t, unsetVars: map[string]bool{}}
	// Read disabled first: a disabled upstream may refer to variables
	// that are not set, since it will not be started.
	t.boolean("disabled", &u.Disabled)
	t.str("name", &u.Name)
	t.str("display_name", &u.DisplayName)
	d.decodeTransportFields(t, &u, &m, u.Disabled)
	var prefix string
	if t.str("prefix", &prefix) {
		u.Prefix = &prefix
	}
	t.duration("timeout", &u.Timeout)
	t.duration("connect_timeout", &u.ConnectTimeout)
	t.duration("start_timeout", &u.StartTimeout)
	d.decodeFailureHandling(t, &u.FailureHandling)
	d.decodeCache(t, &u.Cache)
	d.decodeUpstreamGuard(t, &u)
	t.str("isolation", &u.Isolation)
	t.str("module", &u.Module)
	d.decodeSandbox(t, &m)
	t.str("locality", &u.Locality)
	d.decodeToolList(t, "local_only", &u.LocalOnly) // tool names or ["*"], as deferrable
	var keep bool
	if t.boolean("keep_catalog", &keep) {
		u.KeepCatalog = &keep
	}
	var check bool
	if t.boolean("check_arguments", &check) {
		u.CheckArguments = &check
	}
	t.str("pin", &u.Pin)
	m.tls = d.decodeClientTLS(t, &u.TLS)
	m.targets = d.decodeTargets(t, &u)
	t.unknown(upstreamKeys)
	return u, m
}

// resolveDirs makes relative upstream dirs relative to the config file, which
// is what someone writing dir = "servers/x" next to the file means, rather
// than relative to wherever the gateway happens to be started.
func resolveDirs(c *Config, path string) {
	base := filepath.Dir(path)
	resolveTLSPaths(c, base)
	if d := c.Server.DataDir; d != "" && !filepath.IsAbs(d) {
		c.Server.DataDir = filepath.Join(base, d)
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.Dir != "" && !filepath.IsAbs(u.Dir) {
			u.Dir = filepath.Join(base, u.Dir)
		}
		resolveWASMPaths(u, base)
		for j := range u.Targets {
			t := &u.Targets[j]
			if t.Dir != "" && !filepath.IsAbs(t.Dir) {
				t.Dir = filepath.Join(base, t.Dir)
			}
			resolveWASMPaths(t, base)
		}
	}
}
