package upstream

import (
	"slices"
	"sort"
	"strings"

	"github.com/mcpedge/mcpedge/internal/config"
)

// baseEnv are the variables of the gateway's environment every stdio child
// gets: what a program needs to find its tools, its home, its locale and a
// temporary directory. USER, LOGNAME, SHELL and TERM are there too because
// the MCP reference SDKs give them to the servers they start, and servers
// written against those expect them. Nothing here is a secret.
var baseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

// baseEnvWindows is baseEnv on Windows, where a process without
// SYSTEMROOT and its companions cannot even load its libraries.
var baseEnvWindows = []string{
	"PATH", "PATHEXT", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "TEMP", "TMP",
	"USERPROFILE", "USERNAME", "HOMEDRIVE", "HOMEPATH", "APPDATA", "LOCALAPPDATA",
	"PROGRAMFILES", "PROGRAMFILES(X86)", "PROGRAMDATA", "PROCESSOR_ARCHITECTURE", "NUMBER_OF_PROCESSORS", "OS",
}

// childEnv builds the environment of a stdio child from the gateway's own
// (parent, as os.Environ returns it): the base variables (PATH, HOME,
// locale — LANG, LANGUAGE, LC_*, TZ — and TMPDIR, see baseEnv), the
// variables inherit names, and on top of them the upstream's env table,
// whose values win. A variable of the parent whose name starts with
// MCPEDGE_ never passes, whatever lists it; the env table may still set
// such a name, since its values are written in the configuration.
//
// windows makes names case-insensitive, as the platform does, and uses
// the Windows base set.
func childEnv(parent, inherit []string, env map[string]string, windows bool) []string {
	norm := func(s string) string { return s }
	base := baseEnv
	if windows {
		norm = strings.ToUpper
		base = baseEnvWindows
	}
	want := make(map[string]bool, len(base)+len(inherit))
	for _, n := range base {
		want[norm(n)] = true
	}
	for _, n := range inherit {
		want[norm(n)] = true
	}
	out := make([]string, 0, len(want)+len(env))
	for _, kv := range parent {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		n := norm(name)
		if strings.HasPrefix(strings.ToUpper(n), config.OwnEnvPrefix) {
			continue
		}
		if want[n] || strings.HasPrefix(n, "LC_") {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		// A value set here replaces an inherited one rather than
		// following it: some programs read the first of two.
		out = slices.DeleteFunc(out, func(kv string) bool {
			name, _, _ := strings.Cut(kv, "=")
			return norm(name) == norm(k)
		})
		out = append(out, k+"="+env[k])
	}
	return out
}
