package config

import (
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// The MCP clients keep their servers in JSON files of a few shapes, all
// read by ParseMCPServers unchanged:
//
//	Claude Desktop, Cursor, Claude Code (.mcp.json), Windsurf:
//	  {"mcpServers": {"name": {"command": …, "args": […], "env": {…}}, …}}
//	  (remote servers: "url" or Windsurf's "serverUrl", "headers", "type")
//	VS Code (.vscode/mcp.json):
//	  {"inputs": [{"id": "token", "type": "promptString", …}],
//	   "servers": {"name": {"type": "stdio", "command": …, "env": {"T": "${input:token}"}}}}
//	  (and the same under "mcp" in a settings.json)
//	the official MCP registry's server.json:
//	  {"name": "io.github.x/weather", "packages": [{"registryType": "npm", …}],
//	   "remotes": [{"type": "streamable-http", "url": …}]}
//
// The registry's server.json is turned into one mcpServers-style entry
// (registryEntry), so the three shapes share one decoder, one validation
// and the same problem messages.

// Client formats, as ClientFormat names them.
const (
	FormatMCPServers = "mcpServers" // Claude Desktop, Cursor, Claude Code, Windsurf
	FormatVSCode     = "vscode"     // VS Code's "servers" (with "inputs")
	FormatRegistry   = "server.json"
)

// InputEnvPrefix starts the environment variable that supplies a VS Code
// input: ${input:github-token} is read from MCPEDGE_INPUT_GITHUB_TOKEN (VS
// Code asks the user; a gateway has nobody to ask).
const InputEnvPrefix = "MCPEDGE_INPUT_"

// InputEnvName is the environment variable that supplies VS Code's input id.
func InputEnvName(id string) string {
	var b strings.Builder
	b.WriteString(InputEnvPrefix)
	for _, r := range strings.ToUpper(id) {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// clientVars are the variables a client file may use beyond ${VAR} and
// ${env:VAR}: VS Code's inputs, ${workspaceFolder} and ${userHome}.
type clientVars struct {
	inputs    map[string]clientInput
	workspace string
	home      string
}

type clientInput struct {
	description string
	def         string
	hasDef      bool
}

// clientLookup resolves a variable of a client file; base is the
// environment's lookup.
func (cv *clientVars) lookup(base func(string) (string, bool)) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if id, ok := strings.CutPrefix(name, "input:"); ok {
			if v, ok := base(InputEnvName(id)); ok {
				return v, true
			}
			if in, ok := cv.inputs[id]; ok && in.hasDef {
				return in.def, true
			}
			return "", false
		}
		switch name {
		case "workspaceFolder":
			if cv.workspace != "" {
				return cv.workspace, true
			}
		case "userHome":
			if cv.home != "" {
				return cv.home, true
			}
		}
		return base(name)
	}
}

// portable rewrites the client-only references of s into ones a TOML
// configuration understands: ${input:id} becomes ${MCPEDGE_INPUT_ID} (with
// the input's default, if it has one) and ${workspaceFolder} and
// ${userHome} their values. Anything else is kept as written.
func (cv *clientVars) portable(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case strings.HasPrefix(s, "$$"):
			b.WriteString("$$")
			s = s[2:]
			continue
		case !strings.HasPrefix(s, "${"):
			b.WriteByte(s[0])
			s = s[1:]
			continue
		}
		end := strings.IndexByte(s, '}')
		if end < 0 {
			b.WriteString(s)
			break
		}
		ref := s[2:end]
		s = s[end+1:]
		name, _, _ := strings.Cut(ref, ":-")
		switch {
		case strings.HasPrefix(name, "input:"):
			id := strings.TrimPrefix(name, "input:")
			b.WriteString("${" + InputEnvName(id))
			if in, ok := cv.inputs[id]; ok && in.hasDef {
				b.WriteString(":-" + strings.ReplaceAll(in.def, "}", ""))
			}
			b.WriteString("}")
		case name == "workspaceFolder" && cv.workspace != "":
			b.WriteString(strings.ReplaceAll(cv.workspace, "$", "$$"))
		case name == "userHome" && cv.home != "":
			b.WriteString(strings.ReplaceAll(cv.home, "$", "$$"))
		default:
			b.WriteString("${" + ref + "}")
		}
	}
	return b.String()
}

// ClientFormat names the client file format of data ("mcpServers",
// "vscode", "server.json"), or "" when it is none of them.
func ClientFormat(data []byte) string {
	d := &decoder{file: "", json: true, lookup: func(string) (string, bool) { return "", false }}
	root, ok := d.jsonTree(data)
	if !ok || root.kind != kTable {
		return ""
	}
	f, _, _ := clientShape(root)
	return f
}

// clientShape finds the servers of a client file: the format, the object
// of servers and its field name. For a registry server.json, servers is
// nil (see registryEntry).
func clientShape(root *val) (format string, servers *val, field string) {
	if v := root.fields["mcpServers"]; v != nil {
		return FormatMCPServers, v, "mcpServers"
	}
	if v := root.fields["servers"]; v != nil {
		return FormatVSCode, v, "servers"
	}
	if m := root.fields["mcp"]; m != nil && m.kind == kTable && m.fields["servers"] != nil {
		return FormatVSCode, m.fields["servers"], "mcp.servers"
	}
	if root.fields["packages"] != nil || root.fields["remotes"] != nil {
		return FormatRegistry, nil, ""
	}
	return "", nil, ""
}

// decodeInputs reads VS Code's "inputs" array.
func (d *decoder) decodeInputs(v *val, field string) map[string]clientInput {
	out := map[string]clientInput{}
	if v == nil {
		return out
	}
	if v.kind != kArray {
		d.add(v.pos, field, "expected array, got %s", d.kindName(v.kind))
		return out
	}
	for i, e := range v.arr {
		f := indexField(field, i)
		if e.kind != kTable {
			d.add(e.pos, f, "expected object, got %s", d.kindName(e.kind))
			continue
		}
		t := d.table(e, f)
		var id string
		if !t.str("id", &id) || id == "" {
			d.add(e.pos, f, "an input needs an \"id\"")
			continue
		}
		var in clientInput
		t.str("description", &in.description)
		in.hasDef = t.str("default", &in.def)
		out[id] = in
	}
	return out
}

// expandLenient expands the references of a command-line value (command,
// args, cwd) of a client file, which the clients expand there too: a
// well-formed reference to an unset variable is a problem; text that is
// not a reference stays as it is (a "$" in an argument is common).
func (d *decoder) expandLenient(s string, p pos, field string, tolerateUnset bool) string {
	if !strings.Contains(s, "${") {
		return s
	}
	out, missing, err := expandString(s, d.lookup, true)
	if err != nil {
		return s
	}
	if !tolerateUnset {
		for _, name := range missing {
			d.unsetProblem(p, field, name)
		}
	}
	return out
}

// unsetProblem reports the unset variable name at p.
func (d *decoder) unsetProblem(p pos, field, name string) {
	if id, ok := strings.CutPrefix(name, "input:"); ok {
		what := ""
		if d.client != nil {
			if in := d.client.inputs[id]; in.description != "" {
				what = " (" + truncate(in.description, 80) + ")"
			}
		}
		d.add(p, field, "input %q%s is asked of the user by VS Code; set environment variable %s for the gateway, or give the input a \"default\"", truncate(id, 64), what, InputEnvName(id))
		return
	}
	d.add(p, field, "environment variable %s is not set (use ${%s:-default} to supply a default)", name, name)
}

// clientVarsFor returns the variables of a client file at path.
func clientVarsFor(path string) *clientVars {
	cv := &clientVars{inputs: map[string]clientInput{}}
	if path != "" {
		if abs, err := filepath.Abs(path); err == nil {
			dir := filepath.Dir(abs)
			// .vscode/mcp.json, .cursor/mcp.json: the workspace is the
			// folder that holds the client's folder.
			if b := filepath.Base(dir); b == ".vscode" || b == ".cursor" {
				dir = filepath.Dir(dir)
			}
			cv.workspace = dir
		}
	}
	if h, err := os.UserHomeDir(); err == nil {
		cv.home = h
	}
	return cv
}

// registryEntry turns the official MCP registry's server.json into one
// mcpServers-style entry (a table with command/args/env or url/headers/
// type, at the positions of what it came from) named after the server.
// It runs the first package a stdio client can start (npm with npx, pypi
// with uvx, oci with docker, nuget with dnx; runtimeHint overrides the
// command), else connects to the first remote. Environment variables and
// headers without a value become ${NAME} references to the gateway's
// environment (with their default, if any); {placeholders} in values
// become ${PLACEHOLDER}.
func (d *decoder) registryEntry(root *val) (key string, entry *val) {
	rt := d.table(root, "")
	var name, title string
	rt.str("name", &name)
	rt.str("title", &title)
	key = name
	if i := strings.LastIndexByte(name, '/'); i >= 0 && i < len(name)-1 {
		key = name[i+1:]
	}
	if key == "" {
		key = "server"
	}
	entry = newTable(root.pos)
	setStr := func(k string, p pos, s string) { entry.set(k, p, &val{kind: kString, pos: p, str: s}) }
	setList := func(k string, p pos, l []string) {
		a := &val{kind: kArray, pos: p}
		for _, s := range l {
			a.arr = append(a.arr, &val{kind: kString, pos: p, str: s})
		}
		entry.set(k, p, a)
	}
	setMap := func(k string, p pos, keys []string, m map[string]string) {
		t := newTable(p)
		for _, mk := range keys {
			t.set(mk, p, &val{kind: kString, pos: p, str: m[mk]})
		}
		entry.set(k, p, t)
	}

	if pk := rt.get("packages"); pk != nil {
		if pk.kind != kArray {
			rt.typeErr("packages", pk, "array")
			return key, nil
		}
		for i, p := range pk.arr {
			f := indexField("packages", i)
			if p.kind != kTable {
				d.add(p.pos, f, "expected object, got %s", d.kindName(p.kind))
				continue
			}
			pt := d.table(p, f)
			transport := "stdio"
			if tv := pt.get("transport"); tv != nil && tv.kind == kTable {
				d.table(tv, joinField(f, "transport")).str("type", &transport)
			}
			if transport != "stdio" {
				continue // a package that serves HTTP itself needs its own start-up
			}
			cmd, args, env, envKeys, ok := d.registryPackage(pt, f)
			if !ok {
				return key, nil
			}
			setStr("command", p.pos, cmd)
			setList("args", p.pos, args)
			if len(envKeys) > 0 {
				setMap("env", p.pos, envKeys, env)
			}
			return key, entry
		}
	}
	if rv := rt.get("remotes"); rv != nil {
		if rv.kind != kArray {
			rt.typeErr("remotes", rv, "array")
			return key, nil
		}
		for i, r := range rv.arr {
			f := indexField("remotes", i)
			if r.kind != kTable {
				d.add(r.pos, f, "expected object, got %s", d.kindName(r.kind))
				continue
			}
			t := d.table(r, f)
			var typ, u string
			t.str("type", &typ)
			if !t.str("url", &u) {
				d.add(r.pos, f, "a remote needs a \"url\"")
				return key, nil
			}
			setStr("type", r.pos, typ)
			setStr("url", t.loc("url").pos, placeholders(u))
			keys, hdr := d.registryNamedValues(t, "headers", f)
			if len(keys) > 0 {
				setMap("headers", r.pos, keys, hdr)
			}
			return key, entry
		}
	}
	d.add(root.pos, "", "server.json %q has no package a client starts over stdio (npm, pypi, oci, nuget) and no remote", truncate(name, 64))
	return key, nil
}

// registryPackage maps one stdio package of a server.json.
func (d *decoder) registryPackage(pt *table, f string) (cmd string, args []string, env map[string]string, envKeys []string, ok bool) {
	var typ, ident, version, hint string
	pt.str("registryType", &typ)
	pt.str("identifier", &ident)
	pt.str("version", &version)
	pt.str("runtimeHint", &hint)
	if ident == "" {
		d.add(pt.v.pos, f, "a package needs an \"identifier\"")
		return "", nil, nil, nil, false
	}
	envKeys, env = d.registryNamedValues(pt, "environmentVariables", f)
	runtimeArgs, rok := d.registryArguments(pt, "runtimeArguments", f)
	pkgArgs, pok := d.registryArguments(pt, "packageArguments", f)
	if !rok || !pok {
		return "", nil, nil, nil, false
	}
	var spec string
	var defArgs []string
	switch typ {
	case "npm":
		cmd, defArgs, spec = "npx", []string{"-y"}, ident
		if version != "" {
			spec += "@" + version
		}
	case "pypi":
		cmd, spec = "uvx", ident
		if version != "" {
			spec += "==" + version
		}
	case "oci":
		cmd, defArgs, spec = "docker", []string{"run", "-i", "--rm"}, ident
		if version != "" && !strings.Contains(ident[strings.LastIndexByte(ident, '/')+1:], ":") {
			spec += ":" + version
		}
		// A container sees only the variables it is given.
		for _, k := range envKeys {
			defArgs = append(defArgs, "-e", k)
		}
	case "nuget":
		cmd, spec = "dnx", ident
		if version != "" {
			spec += "@" + version
		}
		pkgArgs = append([]string{"--yes"}, pkgArgs...)
	default:
		l := pt.loc("registryType")
		d.add(l.pos, l.field, "registry type %q is not supported (npm, pypi, oci and nuget are)", truncate(typ, 64))
		return "", nil, nil, nil, false
	}
	if hint != "" {
		cmd = hint
	}
	if len(runtimeArgs) > 0 {
		defArgs = runtimeArgs
	}
	args = append(append(append(args, defArgs...), spec), pkgArgs...)
	return cmd, args, env, envKeys, true
}

// registryArguments reads a server.json argument list: positional values,
// and named ones as "--name value" (or "--name" alone for a flag). An
// argument without a value takes its default; without either it is left
// out (it is optional) or a problem (isRequired).
func (d *decoder) registryArguments(pt *table, key, f string) ([]string, bool) {
	v := pt.get(key)
	if v == nil {
		return nil, true
	}
	if v.kind != kArray {
		pt.typeErr(key, v, "array")
		return nil, false
	}
	var out []string
	ok := true
	for i, a := range v.arr {
		af := indexField(joinField(f, key), i)
		if a.kind != kTable {
			d.add(a.pos, af, "expected object, got %s", d.kindName(a.kind))
			ok = false
			continue
		}
		t := d.table(a, af)
		var typ, name, value, def string
		var required bool
		t.str("type", &typ)
		t.str("name", &name)
		hasValue := t.str("value", &value)
		hasDef := t.str("default", &def)
		t.boolean("isRequired", &required)
		if !hasValue && hasDef {
			value, hasValue = def, true
		}
		value = placeholders(value)
		switch typ {
		case "named":
			if name == "" {
				d.add(a.pos, af, "a named argument needs a \"name\"")
				ok = false
				continue
			}
			if !hasValue {
				if required {
					out = append(out, name) // a flag
				}
				continue
			}
			out = append(out, name, value)
		default: // positional
			if !hasValue {
				if required {
					d.add(a.pos, af, "required argument %q has no value or default: give it one in the imported configuration", truncate(name+t.firstHint(), 64))
					ok = false
				}
				continue
			}
			out = append(out, value)
		}
	}
	return out, ok
}

// firstHint is the argument's valueHint, for messages.
func (t *table) firstHint() string {
	var h string
	t.str("valueHint", &h)
	return h
}

// registryNamedValues reads environmentVariables or headers: each named
// item becomes name → its value, or a ${NAME} reference (with its default)
// to the gateway's environment.
func (d *decoder) registryNamedValues(pt *table, key, f string) ([]string, map[string]string) {
	v := pt.get(key)
	if v == nil {
		return nil, nil
	}
	if v.kind != kArray {
		pt.typeErr(key, v, "array")
		return nil, nil
	}
	var keys []string
	out := map[string]string{}
	for i, e := range v.arr {
		ef := indexField(joinField(f, key), i)
		if e.kind != kTable {
			d.add(e.pos, ef, "expected object, got %s", d.kindName(e.kind))
			continue
		}
		t := d.table(e, ef)
		var name, value, def string
		if !t.str("name", &name) || name == "" {
			d.add(e.pos, ef, "needs a \"name\"")
			continue
		}
		hasDef := t.str("default", &def)
		if t.str("value", &value) {
			value = placeholders(value)
		} else {
			ref := envRefName(name)
			if hasDef {
				value = "${" + ref + ":-" + strings.ReplaceAll(def, "}", "") + "}"
			} else {
				value = "${" + ref + "}"
			}
		}
		if _, dup := out[name]; !dup {
			keys = append(keys, name)
		}
		out[name] = value
	}
	return keys, out
}

// placeholders turns server.json's {name} placeholders into ${NAME}
// references (a literal "$" is doubled).
func placeholders(s string) string {
	s = strings.ReplaceAll(s, "$", "$$")
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s)
			return b.String()
		}
		name := s[i+1 : i+end]
		if name == "" || !validEnvName(envRefName(name)) {
			b.WriteString(s[:i+end+1])
			s = s[i+end+1:]
			continue
		}
		b.WriteString(s[:i] + "${" + envRefName(name) + "}")
		s = s[i+end+1:]
	}
}

// envRefName makes an environment variable name of a header or
// placeholder name: upper case, other characters "_".
func envRefName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out != "" && out[0] >= '0' && out[0] <= '9' {
		out = "_" + out
	}
	return out
}
