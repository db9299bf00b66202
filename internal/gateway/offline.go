package gateway

// keepOfflineLocked decides what happens to an upstream's catalog when its
// connection is lost (every target's, for an upstream with targets). By
// default its items are withdrawn: offering tools that certainly cannot
// be called helps nobody. An upstream that keeps its catalog
// ([config.Upstream.KeepsCatalog]: keep_catalog, or by default one with
// deferrable tools or a response cache) stays listed with the catalog it
// had, so that an edge device that lost its network still shows its
// clients the tools whose calls are queued or answered from the cache;
// other calls fail fast with CodeUpstreamUnavailable. The kept catalog is
// replaced as soon as the upstream is back. It reports whether the
// catalog is kept. g.mu must be held.
func (g *Gateway) keepOfflineLocked(name string) bool {
	gr, reg := g.groups[name], g.regs[name]
	if gr == nil || reg == nil || !gr.cfg.KeepsCatalog() {
		return false
	}
	if !reg.offline {
		reg.offline = true
		g.log.Warn("upstream down: its last catalog stays listed (keep_catalog); calls fail, are queued or answered from the cache until it is back",
			"upstream", name, "tools", len(reg.tools))
	}
	return true
}
