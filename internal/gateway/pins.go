package gateway

import (
	"github.com/mcpedge/mcpedge/internal/pin"
	"github.com/mcpedge/mcpedge/internal/upstream"
)

// Pinner is tool pinning (internal/pin) as the gateway uses it: given the
// catalog an upstream offers, the catalog to serve. Serve is called with
// g.mu held on every registration, so it must be fast and do no I/O
// (*pin.Pinner keeps its pins in memory).
type Pinner interface {
	Serve(upstream, policy string, c pin.Catalog) pin.Catalog
}

// SetPinner turns tool pinning on. Call it before [Gateway.Start]; its
// change notifications go to [Gateway.PinsChanged].
func (g *Gateway) SetPinner(p Pinner) {
	g.mu.Lock()
	g.pinner = p
	g.mu.Unlock()
}

// pinnedLocked is the catalog to register for upstream name: cat with its
// tools, prompts and templates as pinning serves them (pinned definitions
// substituted, changed items withheld). Both the SDK servers and the hot
// path (which looks tools up in the registrations) see only these. The
// gateway's built-in servers are not pinned. g.mu must be held.
func (g *Gateway) pinnedLocked(name string, u *upstream.Upstream, cat *upstream.Catalog) *upstream.Catalog {
	if g.pinner == nil || u.Config().Transport == upstream.TransportBuiltin {
		return cat
	}
	policy := g.wantGroups[name].EffectivePin()
	if policy == pin.Off {
		return cat
	}
	served := g.pinner.Serve(name, policy, pin.Catalog{Tools: cat.Tools, Prompts: cat.Prompts, Templates: cat.Templates})
	out := *cat
	out.Tools, out.Prompts, out.Templates = served.Tools, served.Prompts, served.Templates
	return &out
}

// PinsChanged registers upstream's catalog again because what pinning
// serves for it changed (an approval, a rejection, another replica's pin):
// clients get list_changed from the SDK servers as for any change.
func (g *Gateway) PinsChanged(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reregisterLocked(name)
}

// PolicyChanged tells every client of this replica that its lists may
// have changed: a tenant's virtual servers or rules decide which tools,
// prompts and resources it sees, and the policy just changed (through
// this replica's API, or another process's change announced or polled).
// The catalogs are registered again as they are, which makes the SDK
// servers send tools, prompts and resources list_changed (debounced) to
// their sessions; a client then lists again and sees what it may use now.
func (g *Gateway) PolicyChanged() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name := range g.regs {
		g.reregisterLocked(name)
	}
}

// reregisterLocked registers again the catalog upstream name offers now,
// if it is connected and listed. g.mu must be held.
func (g *Gateway) reregisterLocked(name string) {
	reg := g.regs[name]
	if reg == nil || reg.offline {
		return // not listed, or its saved catalog is (registered again when it connects)
	}
	u := g.lookupLocked(name)
	if u == nil || u.Catalog().Init == nil {
		return
	}
	g.registerLocked(name, u, u.Catalog())
}
