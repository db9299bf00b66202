package admin

import (
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/auth"
	"github.com/mcpedge/mcpedge/internal/principal"
)

// Limits on what one request may set. They keep rows small and listings
// readable; none is a security boundary by itself.
const (
	maxListItems   = 64                  // upstreams, tools, scopes, roles, CIDRs per object
	maxGlobLen     = 200                 // a tool glob
	minPasswordLen = auth.MinPasswordLen // what auth.HashPassword accepts
	maxPasswordLen = 1024                // bounds the hashing cost
	// MaxKeyLifetime bounds expires_in: ten years.
	MaxKeyLifetime = 10 * 365 * 24 * time.Hour
)

var (
	// nameRE is the rule for tenant, user, key, plan and virtual server
	// names: short, lower case, safe in URLs, file names and log lines.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	// upstreamRE matches configured upstream names (config allows
	// [a-z0-9-], at most 48 characters).
	upstreamRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,47}$`)
	// scopeRE: known scopes and free-form ones used by rules ("team:ml").
	scopeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:._/-]{0,63}$`)
)

func validName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return invalid("%s name %q is invalid: use 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit", kind, clip(name))
	}
	return nil
}

func validRole(role string) error {
	if !principal.ValidRole(role) {
		return invalid("role %q is invalid: use viewer, member, admin or owner", clip(role))
	}
	return nil
}

func validRoles(roles []string) error {
	if len(roles) > maxListItems {
		return invalid("at most %d roles", maxListItems)
	}
	for _, r := range roles {
		if err := validRole(r); err != nil {
			return err
		}
	}
	return nil
}

func validScopes(scopes []string) error {
	if len(scopes) > maxListItems {
		return invalid("at most %d scopes", maxListItems)
	}
	for _, s := range scopes {
		if !scopeRE.MatchString(s) {
			return invalid("scope %q is invalid: use up to 64 letters, digits and : . _ / -, such as %s", clip(s), strings.Join(principal.KnownScopes, ", "))
		}
	}
	return nil
}

// validCIDRs checks and normalises an IP allowlist: CIDRs, or bare
// addresses (taken as /32 or /128).
func validCIDRs(list []string) ([]string, error) {
	if len(list) > maxListItems {
		return nil, invalid("at most %d CIDRs in ip_allowlist", maxListItems)
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, invalid("ip_allowlist entry %q is not a CIDR such as 203.0.113.0/24 or an IP address", clip(s))
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = p.Masked()
		if !slices.Contains(out, p.String()) {
			out = append(out, p.String())
		}
	}
	return out, nil
}

// validGlob checks a tool glob (path.Match syntax on the namespaced tool
// name, such as "everything__get*").
func validGlob(field, g string) error {
	if g == "" || len(g) > maxGlobLen || !utf8.ValidString(g) {
		return invalid("%s %q is invalid: give a glob of 1 to %d characters such as \"github__*\"", field, clip(g), maxGlobLen)
	}
	if _, err := path.Match(g, ""); err != nil {
		return invalid("%s %q is not a valid glob (path.Match syntax: * ? [a-z] \\): %v", field, clip(g), err)
	}
	return nil
}

// validUpstreams checks a virtual server's upstream list: configured
// upstream names, or "*" for all of them. It does not require the
// upstreams to be configured now: configuration and tenants change
// independently, and an unknown name simply grants nothing.
func validUpstreams(ups []string) error {
	if len(ups) == 0 {
		return invalid("upstreams must list at least one upstream name, or \"*\" for all")
	}
	if len(ups) > maxListItems {
		return invalid("at most %d upstreams", maxListItems)
	}
	for _, u := range ups {
		if u != "*" && !upstreamRE.MatchString(u) {
			return invalid("upstream %q is invalid: give a configured upstream's name, or \"*\" for all", clip(u))
		}
	}
	return nil
}

func validPassword(pw string) error {
	switch {
	case len(pw) < minPasswordLen:
		return invalid("the password must be at least %d characters long", minPasswordLen)
	case len(pw) > maxPasswordLen:
		return invalid("the password must be at most %d bytes long", maxPasswordLen)
	case !utf8.ValidString(pw):
		return invalid("the password must be valid UTF-8")
	}
	return nil
}

// clip shortens user input quoted in an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	i := 64
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// dedupe returns list without repeats, keeping the first of each, never nil.
func dedupe(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
