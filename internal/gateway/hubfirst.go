package gateway

import "fmt"

// HubUpstream is the name of an edge's synthetic upstream for its hub
// (internal/hub/edge; config reserves the name). Its tools are offered
// without a namespace, so they can clash with the edge's own.
const HubUpstream = "hub"

// yieldToLocalLocked implements "local first" for an edge: when a local
// upstream (name) registers an aggregated tool or prompt name (agg) that
// the hub's upstream holds, the hub's item is withdrawn so the local one
// takes the name, whichever of the two connected first. The hub's item
// is reported as a conflict of the hub upstream. It comes back only
// when the hub's catalog is registered again while the name is free.
// g.mu must be held.
func (g *Gateway) yieldToLocalLocked(items map[string]route, name, agg string, remove func(names ...string)) {
	owner, taken := items[agg]
	if !taken || owner.up != HubUpstream || name == HubUpstream {
		return
	}
	remove(agg)
	delete(items, agg)
	if r := g.regs[HubUpstream]; r != nil {
		r.conflicts = append(r.conflicts, fmt.Sprintf("%q gave way to upstream %s's item of the same name (local first)", agg, name))
	}
}
