package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// wasm upstreams (transport = "wasm"): the module key and the
// [upstreams.sandbox] table. See docs/wasm.md.

var sandboxKeys = []string{"memory_mb", "timeout", "dirs", "env", "max_instances"}

// decodeSandbox reads [upstreams.sandbox] of the upstream table ut into m,
// over the defaults. Validation hands it to wasm upstreams only, so the
// other transports keep a zero Sandbox.
func (d *decoder) decodeSandbox(ut *table, m *upstreamMeta) {
	m.sandbox = defaultSandbox()
	v := ut.get("sandbox")
	if v == nil {
		return
	}
	if v.kind != kTable {
		ut.typeErr("sandbox", v, "table ([upstreams.sandbox])")
		return
	}
	t := d.table(v, ut.loc("sandbox").field)
	m.sandboxT = t
	s := &m.sandbox
	var n int64
	if t.integer("memory_mb", &n) {
		s.MemoryMB = clampInt(n)
	}
	t.duration("timeout", &s.Timeout)
	if t.integer("max_instances", &n) {
		s.MaxInstances = clampInt(n)
	}

	var dirs []string
	if t.strList("dirs", &dirs) {
		out := make([]SandboxDir, 0, len(dirs))
		guests := map[string]int{}
		for i, e := range dirs {
			l := elemLoc(t, "dirs", i)
			sd, msg := parseSandboxDir(e)
			if msg != "" {
				d.add(l.pos, l.field, "%s", msg)
				t.bad["dirs"] = true
				continue
			}
			// Two mounts at one guest path would shadow each other; the
			// key is the guest path, or the host path it defaults to.
			key := sd.Guest
			if key == "" {
				key = "host:" + filepath.Clean(sd.Host)
			}
			if j, dup := guests[key]; dup {
				d.add(l.pos, l.field, "mounts the same place as dirs[%d]", j)
				t.bad["dirs"] = true
				continue
			}
			guests[key] = i
			out = append(out, sd)
		}
		if !t.bad["dirs"] {
			s.Dirs = out
		}
	}

	if t.strList("env", &s.Env) {
		seen := map[string]int{}
		for i, e := range s.Env {
			l := elemLoc(t, "env", i)
			name, val, _ := strings.Cut(e, "=")
			switch {
			case !validEnvName(name):
				d.add(l.pos, l.field, "%q is not a valid environment variable name (letters, digits and _, not starting with a digit); write NAME to pass the gateway's NAME through, or NAME=value", truncate(name, 64))
				t.bad["env"] = true
			case strings.ContainsRune(val, 0):
				d.add(l.pos, l.field, "value must not contain NUL bytes")
				t.bad["env"] = true
			default:
				if j, dup := seen[name]; dup {
					d.add(l.pos, l.field, "%s is already set by env[%d]", name, j)
					t.bad["env"] = true
				}
				seen[name] = i
			}
		}
	}
	t.unknown(sandboxKeys)
}

// elemLoc locates element i of the array key of t.
func elemLoc(t *table, key string, i int) loc {
	l := t.loc(key)
	l.field = indexField(l.field, i)
	if a := t.v.fields[key]; a != nil && a.kind == kArray && i < len(a.arr) && a.arr[i].pos.line > 0 {
		l.pos = a.arr[i].pos
	}
	return l
}

// parseSandboxDir parses one sandbox.dirs entry, "host[:guest][:ro|:rw]",
// returning a problem message if it is malformed. Host paths containing ":"
// cannot be written this way.
func parseSandboxDir(s string) (SandboxDir, string) {
	const syntax = `write "host/dir" (read-only), "host/dir:rw" (read-write) or "host/dir:/guest/dir[:rw]"`
	if strings.ContainsRune(s, 0) {
		return SandboxDir{}, "must not contain NUL bytes"
	}
	var sd SandboxDir
	rest := s
	switch {
	case strings.HasSuffix(rest, ":rw"):
		sd.Writable = true
		rest = strings.TrimSuffix(rest, ":rw")
	case strings.HasSuffix(rest, ":ro"):
		rest = strings.TrimSuffix(rest, ":ro")
	}
	host, guest, hasGuest := strings.Cut(rest, ":")
	if host == "" {
		return SandboxDir{}, fmt.Sprintf("%q names no host directory; %s", truncate(s, 80), syntax)
	}
	sd.Host = host
	if hasGuest {
		switch {
		case !strings.HasPrefix(guest, "/"):
			return SandboxDir{}, fmt.Sprintf("%q: after the host directory comes an absolute guest path or the mode ro or rw; %s", truncate(s, 80), syntax)
		case strings.Contains(guest, ":"):
			return SandboxDir{}, fmt.Sprintf("%q: unknown mode %q (ro or rw)", truncate(s, 80), truncate(guest[strings.LastIndexByte(guest, ':')+1:], 20))
		}
		sd.Guest = path.Clean(guest)
	}
	return sd, ""
}

// validateWASM checks a wasm upstream and gives it its sandbox. With a
// file system base (Load), it also checks that the module is a readable
// WebAssembly file, records its hash, and checks that every sandbox
// directory exists.
func (d *decoder) validateWASM(u *Upstream, m upstreamMeta, hasCommand, hasURL bool) {
	bad := func(field, format string, args ...any) {
		l := m.loc(field)
		d.add(l.pos, l.field, format, args...)
	}
	switch {
	case u.Module == "":
		bad("module", "is required for the wasm transport: the path of a WebAssembly (WASI preview 1) module")
	case strings.ContainsRune(u.Module, 0):
		bad("module", "must not contain NUL bytes")
	}
	if hasCommand {
		bad("command", "is not used by the wasm transport")
	}
	if hasURL {
		bad("url", "is not used by the wasm transport")
	}
	if u.Args != nil {
		bad("args", "are not used by the wasm transport")
	}
	if u.Env != nil {
		bad("env", "is not used by the wasm transport (the module's environment is the allow-list sandbox.env)")
	}
	if u.Dir != "" {
		bad("dir", "is not used by the wasm transport (sandbox.dirs lists the directories the module may use)")
	}
	if u.Headers != nil {
		bad("headers", "are not used by the wasm transport")
	}

	sb := m.sandbox
	sbad := func(key, format string, args ...any) {
		if m.sandboxT == nil {
			l := m.loc("sandbox")
			d.add(l.pos, joinField(l.field, key), format, args...)
			return
		}
		if m.sandboxT.bad[key] {
			return
		}
		l := m.sandboxT.loc(key)
		d.add(l.pos, l.field, format, args...)
	}
	if sb.MemoryMB < 1 || sb.MemoryMB > MaxSandboxMemoryMB {
		sbad("memory_mb", "must be between 1 and %d, got %d", MaxSandboxMemoryMB, sb.MemoryMB)
	}
	if sb.Timeout <= 0 {
		sbad("timeout", "must be greater than 0, got %s", sb.Timeout)
	}
	if sb.MaxInstances < 1 || sb.MaxInstances > MaxSandboxMaxInstances {
		sbad("max_instances", "must be between 1 and %d, got %d", MaxSandboxMaxInstances, sb.MaxInstances)
	}
	u.Sandbox = sb

	// A disabled upstream will not run, so its files need not exist yet.
	if d.base == "" || u.Disabled {
		return
	}
	if u.Module != "" && !strings.ContainsRune(u.Module, 0) {
		hash, msg := hashModuleFile(resolvePath(d.base, u.Module))
		if msg != "" {
			bad("module", "%s", msg)
		} else {
			u.ModuleHash = hash
		}
	}
	for i, dir := range sb.Dirs {
		p := resolvePath(d.base, dir.Host)
		fi, err := os.Stat(p)
		msg := ""
		switch {
		case err != nil:
			msg = fmt.Sprintf("directory to mount: %v", err)
		case !fi.IsDir():
			msg = fmt.Sprintf("%s is not a directory", p)
		}
		if msg != "" {
			l := elemLoc(m.sandboxT, "dirs", i)
			d.add(l.pos, l.field, "%s", msg)
		}
	}
}

// wasmMagic is how every WebAssembly binary starts; wasmCoreVersion follows
// in a core module (components have another version).
var (
	wasmMagic       = []byte("\x00asm")
	wasmCoreVersion = []byte{1, 0, 0, 0}
)

// hashModuleFile returns the hex SHA-256 of the WebAssembly module at p, or
// a problem message if it cannot be read or is not a core module.
func hashModuleFile(p string) (string, string) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Sprintf("cannot read the module: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Sprintf("cannot read the module: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Sprintf("%s is not a regular file", p)
	}
	if fi.Size() > MaxModuleBytes {
		return "", fmt.Sprintf("%s is %d bytes; modules may be at most %d MiB", p, fi.Size(), MaxModuleBytes>>20)
	}
	var head [8]byte
	n, _ := io.ReadFull(f, head[:])
	switch {
	case n < len(head) || !bytes.Equal(head[:4], wasmMagic):
		return "", fmt.Sprintf("%s is not a WebAssembly module (it does not start with \\0asm)", p)
	case !bytes.Equal(head[4:], wasmCoreVersion):
		return "", fmt.Sprintf("%s is not a WebAssembly core module (a component, or an unknown version); build a WASI preview 1 module, e.g. GOOS=wasip1 GOARCH=wasm go build", p)
	}
	h := sha256.New()
	h.Write(head[:])
	if _, err := io.Copy(h, io.LimitReader(f, MaxModuleBytes)); err != nil {
		return "", fmt.Sprintf("cannot read the module: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), ""
}

func resolvePath(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// resolveWASMPaths makes a wasm upstream's module and sandbox directories
// absolute against base, the config file's directory, as dir is for stdio.
func resolveWASMPaths(u *Upstream, base string) {
	if u.Transport != TransportWASM {
		return
	}
	if u.Module != "" {
		u.Module = resolvePath(base, u.Module)
	}
	if len(u.Sandbox.Dirs) > 0 {
		dirs := make([]SandboxDir, len(u.Sandbox.Dirs))
		for i, sd := range u.Sandbox.Dirs {
			sd.Host = resolvePath(base, sd.Host)
			dirs[i] = sd
		}
		u.Sandbox.Dirs = dirs
	}
}
