package policy

import (
	"context"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/principal"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TestDenyRuleGlobCoversSlash: rules and virtual-server globs are
// matched with path.Match, whose * and ? never match '/'. Upstream tool
// names may contain '/' (the SDK only logs a warning for such names, and
// the gateway registers them), so a deny rule "gh__*" does not deny
// "gh__repo/delete", and a member the rule is meant to stop may call it.
func TestDenyRuleGlobCoversSlash(t *testing.T) {
	src := &fakeSource{
		version: 1,
		tenants: []store.Tenant{{ID: "a", Name: "a"}},
		vss:     map[string][]store.VirtualServer{"a": {{Upstreams: []string{"gh"}}}},
		rules: map[string][]store.Rule{"a": {
			{Tool: "gh__*", Effect: "deny", Roles: []string{"member"}},
		}},
	}
	e := New(src, config.DefaultPlans(), nil)
	if err := e.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	member := &principal.Principal{Kind: principal.KindKey, ID: "k", TenantID: "a", Role: principal.RoleMember}
	if e.Allowed(member, "gh", "tool", "list_repos") {
		t.Fatal("control: the deny rule does not hold for a plain name")
	}
	if e.Allowed(member, "gh", "tool", "repo/delete") {
		t.Fatal(`deny rule "gh__*" does not cover "gh__repo/delete": '/' in a tool name escapes every * glob`)
	}
}

// TestGlobMatchAgreesWithPathMatch: apart from '/', globMatch is
// path.Match: same answers on names without '/', nothing for malformed
// patterns; and * and ? also cover '/'.
func TestGlobMatchAgreesWithPathMatch(t *testing.T) {
	patterns := []string{
		"*", "gh__*", "gh__get*", "*__delete", "gh__?", "gh__[a-c]x", "gh__[^a-c]x", `gh__\*`, `gh__[\]]`,
		"gh__[a-]", "gh__[", `gh__\`, "ü__*", "gh__[ü-ÿ]", "gh__*_*", "**", "gh__[-a]", "[]", "gh__[\\-]x",
	}
	names := []string{"", "gh__", "gh__a", "gh__ax", "gh__dx", "gh__get_x", "gh__*", "gh__]", "x__delete", "ü__z", "gh__ö", "gh__a_b", "gh__-x", "gh"}
	for _, p := range patterns {
		for _, n := range names {
			want, err := path.Match(p, n)
			if err != nil {
				want = false
			}
			if got := globMatch(p, n); got != want {
				t.Errorf("globMatch(%q, %q) = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
	for _, c := range []struct {
		p, n string
		want bool
	}{
		{"gh__*", "gh__repo/delete", true},
		{"gh__*/delete", "gh__repo/x/delete", true},
		{"gh__?", "gh__/", true},
		{"gh__[/]", "gh__/", true},
		{"gh__[^/]", "gh__/", false},
		{"gh__x", "gh__x/", false},
		{"gh__x", "xgh__x", false},
	} {
		if got := globMatch(c.p, c.n); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.p, c.n, got, c.want)
		}
	}
}

// FuzzReviewGlobMatch: on names without '/', globMatch and path.Match
// agree for every pattern.
func FuzzReviewGlobMatch(f *testing.F) {
	f.Add("gh__[a-c]*", "gh__b_x")
	f.Add(`a\*?[^x-z]`, "a*bq")
	f.Fuzz(func(t *testing.T, p, n string) {
		if strings.Contains(n, "/") || !utf8.ValidString(p) || !utf8.ValidString(n) {
			return // names from JSON and stored globs are valid UTF-8
		}
		want, err := path.Match(p, n)
		if err != nil {
			want = false
		}
		if got := globMatch(p, n); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, path.Match says %v", p, n, got, want)
		}
	})
}
