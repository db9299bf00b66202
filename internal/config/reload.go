package config

import (
	"reflect"
	"strings"
	"unicode"
)

// LiveKeys returns the settings a running gateway takes on at a reload
// (SIGHUP or a change of the configuration file), as dotted keys; a key
// names its whole table. Every other setting is read once at start:
// RestartKeys lists those that changed.
func LiveKeys() []string {
	return []string{
		"upstreams", // built next to the running ones, swapped in, drained
		"lattice",   // the built-in lattice engine's limits
		"routing",   // read on every call
		"plans",     // the policy snapshot is rebuilt (rate limits, quotas)
		"audit.arguments",
		"server.hot_path", // read on every call
		"guard",           // copied into each upstream's settings (Upstream.Guard)
		"auth",            // auth.Service.Reconfigure, except restartOnly below
		// [server.tls]: the certificate and CA files are re-read and the
		// client certificate mapping replaced (turning TLS on or off and
		// [server.tls.acme] need a restart).
		"server.tls.cert_file", "server.tls.key_file", "server.tls.min_version",
		"server.tls.client_ca_file", "server.tls.client_auth", "server.tls.client_certs",
	}
}

// restartOnly are keys inside a live table that only a restart applies:
// the auth mode decides which middleware the HTTP edge is built with, and
// the bootstrap settings are read once, on an empty store.
var restartOnly = []string{"auth.mode", "auth.bootstrap_tenant", "auth.bootstrap_key_env", "auth.bootstrap_password_env"}

// RestartKeys returns the dotted keys (as written in the TOML file, e.g.
// "store.url", "auth.oidc.issuer", "server.listen") whose value differs
// between the running configuration and the next one and that only a
// restart applies. It is empty when a reload applies every change.
func RestartKeys(running, next *Config) []string {
	var out []string
	diff(reflect.ValueOf(*running), reflect.ValueOf(*next), "", &out)
	return out
}

func diff(a, b reflect.Value, prefix string, out *[]string) {
	if live(prefix) && !holdsRestartOnly(prefix) {
		return
	}
	if a.Kind() == reflect.Struct && a.Type() != reflect.TypeOf(Duration(0)) {
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			key := snake(f.Name)
			if prefix != "" {
				key = prefix + "." + key
			}
			diff(a.Field(i), b.Field(i), key, out)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*out = append(*out, prefix)
	}
}

// holdsRestartOnly tells whether a restart-only key lies inside key's table.
func holdsRestartOnly(key string) bool {
	for _, k := range restartOnly {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

func live(key string) bool {
	if key == "path" {
		return true // where the file is, not a setting
	}
	for _, k := range restartOnly {
		if key == k {
			return false
		}
	}
	for _, k := range LiveKeys() {
		if key == k || strings.HasPrefix(key, k+".") {
			return true
		}
	}
	return false
}

// snake turns a Go field name into its TOML key: MaxBodyBytes →
// max_body_bytes, OIDC → oidc, URL → url, JWKSURL → jwks_url.
func snake(name string) string {
	switch name { // acronyms the rule below cannot split
	case "JWKSURL":
		return "jwks_url"
	case "PCRs":
		return "pcrs"
	}
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) {
			prevLower := i > 0 && unicode.IsLower(r[i-1])
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1]) && i > 0 && unicode.IsUpper(r[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
