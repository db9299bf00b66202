package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// LoadMCPServers reads the JSON file that desktop MCP clients use to list
// their servers:
//
//	{"mcpServers": {
//	  "files":  {"command": "npx", "args": ["-y", "..."], "env": {"K": "v"}},
//	  "remote": {"url": "https://host/mcp", "headers": {...}, "type": "http"}
//	}}
//
// so that a gateway can be put in front of an existing setup without
// rewriting it. Server settings get their defaults. Errors are reported as by
// Load.
func LoadMCPServers(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseMCPServers(path, data)
	if err != nil {
		return nil, err
	}
	resolveDirs(c, path)
	return c, nil
}

// ParseMCPServers is LoadMCPServers without the file system. path is only
// used in problem messages and as Config.Path.
//
// Each entry understands command, args, env, cwd, url (or serverUrl),
// headers, type (stdio, http, streamable-http, sse) and disabled, and
// mcpedge's inherit_env and allow_private; other
// fields, which clients add for their own purposes (autoApprove, timeout...),
// are ignored. Server keys become upstream names after being made valid
// (see deriveNames) and are kept in DisplayName. Upstreams are sorted by
// name.
func ParseMCPServers(path string, data []byte) (*Config, error) {
	return parseMCPServers(path, data, os.LookupEnv)
}

func parseMCPServers(path string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	c, _, err := parseClientFile(path, data, lookup, nil)
	return c, err
}

// parseClientFile parses a client file. raw, if not nil, receives the text
// of the expanded settings (see decoder.raw); the returned map gives each
// upstream's field ("mcpServers.files") by name.
func parseClientFile(path string, data []byte, lookup func(string) (string, bool), raw map[string]string) (*Config, map[string]string, error) {
	cv := clientVarsFor(path)
	d := &decoder{file: path, json: true, client: cv, raw: raw}
	d.lookup = cv.lookup(lookup)
	root, ok := d.jsonTree(data)
	if !ok {
		sortProblems(d.probs)
		return nil, nil, &d.probs
	}
	c, fields := d.decodeMCPServers(root)
	c.Path = path
	if len(d.probs) > 0 {
		sortProblems(d.probs)
		return nil, nil, &d.probs
	}
	return c, fields, nil
}

func (d *decoder) decodeMCPServers(root *val) (*Config, map[string]string) {
	c := Default()
	fields := map[string]string{}
	if root.kind != kTable {
		d.add(root.pos, "", "expected a JSON object with an \"mcpServers\" member, got %s", d.kindName(root.kind))
		return c, fields
	}
	format, servers, field := clientShape(root)
	switch format {
	case "":
		d.add(root.pos, "", "no \"mcpServers\" object found (nor VS Code's \"servers\", nor the \"packages\" or \"remotes\" of a registry server.json)")
		return c, fields
	case FormatVSCode:
		d.client.inputs = d.decodeInputs(root.fields["inputs"], "inputs")
	case FormatRegistry:
		key, entry := d.registryEntry(root)
		if entry == nil {
			return c, fields
		}
		servers = newTable(root.pos)
		servers.set(key, root.pos, entry)
		field = "server.json"
	}
	if servers.kind != kTable {
		p := root.keyPos[field]
		if format == FormatVSCode && field != "servers" {
			p = root.fields["mcp"].keyPos["servers"]
		}
		d.add(p, field, "expected object, got %s", d.kindName(servers.kind))
		return c, fields
	}

	type entry struct {
		u     Upstream
		m     upstreamMeta
		key   string
		title string
	}
	var entries []entry
	for _, key := range servers.keys {
		v := servers.fields[key]
		f := joinField(field, key)
		if v.kind != kTable {
			d.add(servers.keyPos[key], f, "expected object, got %s", d.kindName(v.kind))
			continue
		}
		u, m := d.decodeMCPServer(d.table(v, f))
		u.DisplayName = key
		e := entry{u: u, m: m, key: key}
		if format == FormatRegistry {
			d.table(root, "").str("title", &e.title)
		}
		entries = append(entries, e)
	}

	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.key
	}
	names := deriveNames(keys)
	for i := range entries {
		entries[i].u.Name = names[i]
		fields[names[i]] = joinField(field, keys[i])
		if entries[i].title != "" {
			entries[i].u.DisplayName = entries[i].title
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.u.Name, b.u.Name) })

	metas := make([]upstreamMeta, len(entries))
	for i, e := range entries {
		c.Upstreams = append(c.Upstreams, e.u)
		metas[i] = e.m
	}
	d.validate(c, serverMeta{}, metas)
	return c, fields
}

func (d *decoder) decodeMCPServer(t *table) (Upstream, upstreamMeta) {
	u := defaultUpstream()
	m := upstreamMeta{
		t:         t,
		rename:    map[string]string{"transport": "type", "dir": "cwd"},
		unsetVars: map[string]bool{},
	}
	t.boolean("disabled", &u.Disabled)
	t.str("type", &u.Transport)
	// The clients expand ${...} in the command line too (VS Code's
	// ${input:…} and ${workspaceFolder}, Claude Code's and Cursor's
	// ${VAR} and ${env:VAR}).
	if t.str("command", &u.Command) {
		u.Command = d.expandLenient(u.Command, t.loc("command").pos, t.loc("command").field, u.Disabled)
	}
	if t.strList("args", &u.Args) {
		for i, a := range u.Args {
			u.Args[i] = d.expandLenient(a, t.loc("args").pos, indexField(t.loc("args").field, i), u.Disabled)
		}
	}
	if t.str("cwd", &u.Dir) {
		u.Dir = d.expandLenient(u.Dir, t.loc("cwd").pos, t.loc("cwd").field, u.Disabled)
	}
	if t.get("envFile") != nil {
		l := t.loc("envFile")
		d.add(l.pos, l.field, "envFile is not read by mcpedge: put the variables in \"env\" (values may be ${VAR} references to the gateway's environment)")
	}
	if _, unset := t.strMap("env", &u.Env, true, u.Disabled); unset {
		m.unsetVars["env"] = true
	}
	// Some clients spell the endpoint "serverUrl".
	urlKey := "url"
	if t.v.fields["url"] == nil && t.v.fields["serverUrl"] != nil {
		urlKey = "serverUrl"
		m.rename["url"] = "serverUrl"
	}
	if t.str(urlKey, &u.URL) {
		l := t.loc(urlKey)
		var unset bool
		u.URL, unset = d.expand(u.URL, l.pos, l.field, u.Disabled)
		m.unsetVars["url"] = unset
	}
	if _, unset := t.strMap("headers", &u.Headers, true, u.Disabled); unset {
		m.unsetVars["headers"] = true
	}
	// mcpedge's own: which variables a child inherits, which private
	// ranges a URL may reach (see the TOML keys of the same names).
	d.decodeEgressFields(t, &u, &m)
	// Unknown fields are ignored on purpose: every client adds its own.
	return u, m
}

// deriveNames turns mcpServers keys, which may be any string ("My Files",
// "github.com/x"), into valid, unique upstream names: lower-cased, runs of
// other characters replaced by one "-", trimmed, cut to MaxNameLen, and
// "upstream" if nothing is left. Collisions get -2, -3, ... Keys that are
// already valid names keep them, so a well-named file maps one to one; the
// rest are assigned in sorted key order, so the result is deterministic.
func deriveNames(keys []string) []string {
	names := make([]string, len(keys))
	used := map[string]bool{}
	for r := range ReservedNames {
		used[r] = true // a desktop server called "lattice" becomes "lattice-2"
	}
	for i, k := range keys {
		if len(k) <= MaxNameLen && nameRE.MatchString(k) && !used[k] {
			names[i] = k
			used[k] = true
		}
	}
	order := make([]int, 0, len(keys))
	for i := range keys {
		if names[i] == "" {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	// next remembers the next suffix to try per base, so that many keys
	// with the same base do not cost quadratic time.
	next := map[string]int{}
	for _, i := range order {
		base := sanitizeName(keys[i])
		name := base
		n := max(next[base], 2)
		for ; used[name]; n++ {
			suffix := "-" + strconv.Itoa(n)
			name = strings.TrimRight(cut(base, MaxNameLen-len(suffix)), "-") + suffix
		}
		next[base] = n
		names[i] = name
		used[name] = true
	}
	return names
}

func sanitizeName(k string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(k) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-")
	s = strings.TrimRight(cut(s, MaxNameLen), "-")
	if s == "" {
		s = "upstream"
	}
	return s
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maxJSONNesting bounds the nesting depth of a config JSON document, so a
// hostile file cannot make the recursive tree builder use unbounded stack.
const maxJSONNesting = 1000

// jsonTree decodes data into a positioned tree. encoding/json's token
// stream is used rather than Unmarshal because it exposes offsets, which
// become line:col in problems. Duplicate keys are reported: with them, which
// entry wins is unclear to the reader.
func (d *decoder) jsonTree(data []byte) (*val, bool) {
	li := newLineIndex(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()

	// start returns the position of the token that the next Token call
	// will return: the decoder's offset points just past the previous
	// token, before any whitespace and separators.
	start := func() pos {
		off := int(dec.InputOffset())
		for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
			off++
		}
		return li.pos(off)
	}
	fail := func(err error) (*val, bool) {
		var pe *posError
		if errors.As(err, &pe) {
			d.add(pe.p, "", "invalid JSON: %s", pe.msg)
		} else {
			d.add(pos{}, "", "invalid JSON: %s", err)
		}
		return nil, false
	}

	var value func(depth int) (*val, error)
	value = func(depth int) (*val, error) {
		p := start()
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch x := tok.(type) {
		case json.Delim:
			if depth >= maxJSONNesting {
				return nil, &posError{p, fmt.Sprintf("nested more than %d levels deep", maxJSONNesting)}
			}
			switch x {
			case '{':
				t := newTable(p)
				for dec.More() {
					kp := start()
					ktok, err := dec.Token()
					if err != nil {
						return nil, err
					}
					key, _ := ktok.(string)
					v, err := value(depth + 1)
					if err != nil {
						return nil, err
					}
					if _, dup := t.fields[key]; dup {
						d.add(kp, "", "duplicate key %q (first at line %d)", truncate(key, 64), t.keyPos[key].line)
						continue
					}
					t.set(key, kp, v)
				}
				if _, err := dec.Token(); err != nil { // '}'
					return nil, err
				}
				return t, nil
			case '[':
				a := &val{kind: kArray, pos: p}
				for dec.More() {
					v, err := value(depth + 1)
					if err != nil {
						return nil, err
					}
					a.arr = append(a.arr, v)
				}
				if _, err := dec.Token(); err != nil { // ']'
					return nil, err
				}
				return a, nil
			}
			return nil, fmt.Errorf("unexpected %q", rune(x))
		case string:
			return &val{kind: kString, pos: p, str: x}, nil
		case json.Number:
			if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return &val{kind: kInt, pos: p, i: i}, nil
			}
			return &val{kind: kFloat, pos: p}, nil
		case bool:
			return &val{kind: kBool, pos: p, b: x}, nil
		case nil:
			return &val{kind: kNull, pos: p}, nil
		}
		return nil, fmt.Errorf("unexpected token %v", tok)
	}

	if len(bytes.TrimSpace(data)) == 0 {
		d.add(pos{}, "", "file is empty: expected a JSON object with an \"mcpServers\" member")
		return nil, false
	}
	// Syntax errors are found by a validating pass first: json.Unmarshal
	// reports absolute offsets, while the offsets in the token stream's
	// errors are not reliable enough to point at the offending character.
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			p := li.pos(max(int(se.Offset)-1, 0))
			if se.Offset >= int64(len(data)) {
				p = li.pos(max(len(data)-1, 0))
			}
			d.add(p, "", "invalid JSON: %s", se.Error())
		} else {
			d.add(pos{}, "", "invalid JSON: %s", err)
		}
		return nil, false
	}
	root, err := value(0)
	if err != nil {
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		d.add(start(), "", "invalid JSON: unexpected data after the top-level value")
		return nil, false
	}
	return root, true
}

type posError struct {
	p   pos
	msg string
}

func (e *posError) Error() string { return e.msg }
