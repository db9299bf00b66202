package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Imported is an MCP client's configuration file read for import: its
// servers as upstreams, and what is needed to write them as TOML.
type Imported struct {
	// Format is the file's format (FormatMCPServers, FormatVSCode or
	// FormatRegistry).
	Format string
	// Config holds the upstreams, validated and expanded as
	// LoadMCPServers gives them.
	Config *Config
	// source is the text of every expanded setting, by field, with VS
	// Code's references made portable; fields is each upstream's field.
	source map[string]string
	fields map[string]string
}

// ImportClientFile reads an MCP client's configuration file (any format
// ParseMCPServers reads) for `mcpedge config import`. Problems are
// reported as by LoadMCPServers.
func ImportClientFile(path string) (*Imported, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	im, err := importClient(path, data, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	resolveDirs(im.Config, path)
	return im, nil
}

func importClient(path string, data []byte, lookup func(string) (string, bool)) (*Imported, error) {
	raw := map[string]string{}
	c, fields, err := parseClientFile(path, data, lookup, raw)
	if err != nil {
		return nil, err
	}
	return &Imported{Format: ClientFormat(data), Config: c, source: raw, fields: fields}, nil
}

// TOML renders the upstreams as a TOML configuration that mcpedge reads to
// the same upstreams: [[upstreams]] tables in the order of the names.
// Settings that held ${VAR} references (env, headers, url) keep them, so no
// secret from the environment is written; VS Code's ${input:id} becomes
// ${MCPEDGE_INPUT_ID}. The command line (command, args, dir) is written
// expanded, as the client would run it.
func (im *Imported) TOML() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# mcpedge configuration imported from %s (%s format).\n", tomlComment(im.Config.Path), im.Format)
	b.WriteString("# See docs/configuration.md for the [server], [auth] and other settings to add.\n")
	for _, u := range im.Config.Upstreams {
		field := im.fields[u.Name]
		src := func(f, expanded string) string {
			if s, ok := im.source[f]; ok {
				return s
			}
			return expanded
		}
		b.WriteString("\n[[upstreams]]\n")
		kv(&b, "name", tomlString(u.Name))
		if u.DisplayName != "" && u.DisplayName != u.Name {
			kv(&b, "display_name", tomlString(u.DisplayName))
		}
		if u.Disabled {
			kv(&b, "disabled", "true")
		}
		kv(&b, "transport", tomlString(u.Transport))
		if u.Command != "" {
			kv(&b, "command", tomlString(u.Command))
		}
		if len(u.Args) > 0 {
			kv(&b, "args", tomlList(u.Args))
		}
		if u.Dir != "" {
			kv(&b, "dir", tomlString(u.Dir))
		}
		if len(u.Env) > 0 {
			kv(&b, "env", tomlInline(u.Env, func(k, v string) string { return src(joinField(joinField(field, "env"), k), v) }))
		}
		if len(u.InheritEnv) > 0 {
			kv(&b, "inherit_env", tomlList(u.InheritEnv))
		}
		if u.URL != "" {
			url := src(joinField(field, "url"), u.URL)
			if s, ok := im.source[joinField(field, "serverUrl")]; ok {
				url = s
			}
			kv(&b, "url", tomlString(url))
		}
		if len(u.Headers) > 0 {
			kv(&b, "headers", tomlInline(u.Headers, func(k, v string) string { return src(joinField(joinField(field, "headers"), k), v) }))
		}
		if len(u.AllowPrivate) > 0 {
			l := make([]string, len(u.AllowPrivate))
			for i, p := range u.AllowPrivate {
				l[i] = p.String()
			}
			kv(&b, "allow_private", tomlList(l))
		}
	}
	return b.Bytes()
}

func kv(b *bytes.Buffer, k, v string) { b.WriteString(k + " = " + v + "\n") }

// tomlString quotes s as a TOML basic string: JSON's string syntax is one
// (escapes \" \\ \n \t \uXXXX), with HTML escaping off.
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	// JSON may write \u2028 and \u2029 escaped or not; TOML takes both. A
	// DEL (0x7f) is a control character TOML refuses raw.
	return strings.ReplaceAll(out, "\x7f", `\u007f`)
}

func tomlList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func tomlInline(m map[string]string, value func(k, v string) string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = tomlString(k) + " = " + tomlString(value(k, m[k]))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func tomlComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// AddUpstreams adds the upstreams of extra, read from an MCP client's file,
// to c, read from a TOML file: `--config` with `--mcp-servers`. A name or
// a tool namespace used by both is an error that names both files: which
// one was meant can not be guessed.
func (c *Config) AddUpstreams(extra *Config) error {
	names := map[string]bool{}
	prefixes := map[string]string{}
	for _, u := range c.Upstreams {
		names[u.Name] = true
		if p := u.NamePrefix(); p != "" && !u.Disabled {
			prefixes[p] = u.Name
		}
	}
	var clashes []string
	for _, u := range extra.Upstreams {
		if names[u.Name] {
			clashes = append(clashes, fmt.Sprintf("upstream %q is in both %s and %s; rename one (in the JSON file, the server's key)", u.Name, c.Path, extra.Path))
			continue
		}
		if p := u.NamePrefix(); p != "" && !u.Disabled {
			if other, ok := prefixes[p]; ok {
				clashes = append(clashes, fmt.Sprintf("upstream %q of %s uses the tool namespace %q of upstream %q of %s; set a different prefix on %q", u.Name, extra.Path, p, other, c.Path, other))
				continue
			}
		}
	}
	if len(clashes) > 0 {
		return fmt.Errorf("combining %s with %s: %s", c.Path, extra.Path, strings.Join(clashes, "; "))
	}
	c.Upstreams = append(c.Upstreams, extra.Upstreams...)
	return nil
}

// LoadCombined loads the TOML configuration at tomlPath and adds the
// servers of the MCP client file at clientPath (see [Config.AddUpstreams]).
// Path stays the TOML file's.
func LoadCombined(tomlPath, clientPath string) (*Config, error) {
	c, err := Load(tomlPath)
	if err != nil {
		return nil, err
	}
	extra, err := LoadMCPServers(clientPath)
	if err != nil {
		return nil, err
	}
	if err := c.AddUpstreams(extra); err != nil {
		return nil, err
	}
	return c, nil
}
