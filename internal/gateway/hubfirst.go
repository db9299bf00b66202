package gateway

import (
	"fmt"
	"slices"
)

// HubUpstream is the name of an edge's synthetic upstream for its hub
// (internal/hub/edge; config reserves the name). Its tools are offered
// without a namespace, so they can clash with the edge's own.
const HubUpstream = "hub"

// yieldToLocalLocked implements "local first" for an edge: when a local
// upstream (name) registers an aggregated tool or prompt name (agg) that
// the hub's upstream holds, the hub's item is withdrawn so the local one
// takes the name, whichever of the two connected first. The hub's item
// is reported as a conflict of the hub upstream and leaves its
// registration (so the hub going down later does not withdraw the local
// item). It comes back only when the hub's catalog is registered again
// while the name is free. g.mu must be held.
func (g *Gateway) yieldToLocalLocked(kind string, items map[string]route, name, agg string, remove func(names ...string)) {
	owner, taken := items[agg]
	if !taken || owner.up != HubUpstream || name == HubUpstream {
		return
	}
	remove(agg)
	delete(items, agg)
	g.hubGaveWayLocked(kind, agg, name)
}

// yieldURIToLocalLocked is yieldToLocalLocked for resources and resource
// templates, which keep their upstreams' URIs. g.mu must be held.
func (g *Gateway) yieldURIToLocalLocked(kind string, items map[string]string, name, uri string, remove func(uris ...string)) {
	owner, taken := items[uri]
	if !taken || owner != HubUpstream || name == HubUpstream {
		return
	}
	remove(uri)
	delete(items, uri)
	g.hubGaveWayLocked(kind, uri, name)
}

// hubGaveWayLocked takes key (of kind tool, prompt, resource or template)
// out of the hub's registration and records why.
func (g *Gateway) hubGaveWayLocked(kind, key, local string) {
	r := g.regs[HubUpstream]
	if r == nil {
		return
	}
	del := func(l *[]string) { *l = slices.DeleteFunc(*l, func(s string) bool { return s == key }) }
	switch kind {
	case "tool":
		del(&r.tools)
	case "prompt":
		del(&r.prompts)
	case "resource":
		del(&r.resources)
	default:
		del(&r.templates)
	}
	r.conflicts = append(r.conflicts, fmt.Sprintf("%s %q gave way to upstream %s's of the same name (local first)", kind, key, local))
}
