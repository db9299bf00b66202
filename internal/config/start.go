package config

import (
	"path/filepath"
	"strings"
)

// packageRunners are the commands that fetch a server before running it,
// by themselves (npx) or with a first argument that says so (pipx run).
// The value lists those arguments; nil means the command alone is one.
var packageRunners = map[string][]string{
	"npx":    nil,
	"pnpx":   nil,
	"bunx":   nil,
	"uvx":    nil,
	"pipx":   {"run"},
	"uv":     {"run", "tool"},
	"docker": {"run"},
	"podman": {"run"},
	"pnpm":   {"dlx"},
	"yarn":   {"dlx"},
	"bun":    {"x"},
	"deno":   {"run"},
}

// IsPackageRunner reports whether u is a stdio upstream whose command is a
// package runner ("npx -y pkg", "uvx pkg", "pipx run pkg", "docker run
// image"...), which may download the server on its first start.
func (u Upstream) IsPackageRunner() bool {
	if u.Transport != TransportStdio && (u.Transport != "" || u.Command == "") {
		return false
	}
	base := strings.ToLower(filepath.Base(filepath.ToSlash(u.Command)))
	for _, ext := range []string{".exe", ".cmd", ".bat"} {
		base = strings.TrimSuffix(base, ext)
	}
	sub, ok := packageRunners[base]
	if !ok {
		return false
	}
	if sub == nil {
		return true
	}
	for _, a := range u.Args {
		if strings.HasPrefix(a, "-") {
			continue // a flag before the subcommand (docker -D run); a flag's value is not told apart
		}
		for _, s := range sub {
			if a == s {
				return true
			}
		}
		return false
	}
	return false
}

// EffectiveStartTimeout is the budget of each connect of the upstream until
// it has been ready once: start_timeout if set, else DefaultStartTimeout
// for a package runner ([Upstream.IsPackageRunner]), else connect_timeout.
// It is never less than connect_timeout.
func (u Upstream) EffectiveStartTimeout() Duration {
	d := u.StartTimeout
	if d == 0 && u.IsPackageRunner() {
		d = DefaultStartTimeout
	}
	return max(d, u.ConnectTimeout)
}
