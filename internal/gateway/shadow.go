package gateway

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/mcpedge/mcpedge/internal/guard"
	"github.com/mcpedge/mcpedge/internal/upstream"
)

// This file keeps what the shadowing check (guard.RuleShadowing,
// docs/guardrails.md "Shadowing") compares a tool with: the tools every
// other upstream offered at its last catalog fetch. The description
// guard (screen, guard.go) asks it for the peers of the upstream it
// screens; when an upstream's tools change so that another upstream's
// verdicts would change (a newcomer takes a name, an impostor goes), that
// other upstream's catalog is fetched and screened again.

// shadowBook is the tools each connection offered, by connection name.
type shadowBook struct {
	mu sync.Mutex
	// rank is each upstream's position in the configuration: a name taken
	// from an earlier upstream is flagged on the later one.
	rank   map[string]int
	offers map[string]*shadowOffer
	// refresh fetches a connection's catalog again (set by the gateway;
	// called without mu held, never blocks).
	refresh func(conn string)
}

// shadowOffer is one connection's tools as last fetched.
type shadowOffer struct {
	group string // the configured upstream (a target's upstream)
	tools []guard.ShadowTool
	// texts are what a model reads of each tool (description, title,
	// parameters' descriptions), by tool name.
	texts map[string][]string
	// judged: the connection's screen runs the shadowing check.
	judged bool
	// sig is what the check found at its last screen (sigOf).
	sig string
}

// offerOf is a catalog's tools as the shadowing check reads them.
func offerOf(group string, cat *upstream.Catalog, judged bool) *shadowOffer {
	o := &shadowOffer{group: group, judged: judged, texts: make(map[string][]string, len(cat.Tools))}
	for _, t := range cat.Tools {
		if t == nil {
			continue
		}
		o.tools = append(o.tools, guard.ShadowTool{Name: t.Name, Description: t.Description})
		o.texts[t.Name] = append([]string{t.Description, t.Title}, guard.SchemaTexts(t.InputSchema, nil)...)
	}
	return o
}

// shadowsLocked indexes the peers of the upstream group for the check.
// b.mu must be held.
func (b *shadowBook) shadowsLocked(o *shadowOffer) *guard.Shadows {
	own := make([]string, len(o.tools))
	for i, t := range o.tools {
		own[i] = t.Name
	}
	mine, known := b.rank[o.group]
	var peers []guard.ShadowPeer
	var ranks []int
	for _, p := range b.offers {
		if p.group == o.group {
			continue // a target of the same upstream
		}
		r, ok := b.rank[p.group]
		if !ok {
			r = len(b.rank)
		}
		peers = append(peers, guard.ShadowPeer{Upstream: p.group, Earlier: ok && (!known || r < mine), Tools: p.tools})
		ranks = append(ranks, r)
	}
	// In configuration order (then by name), so that a finding names the
	// first upstream that offers the tool, the same at every fetch.
	idx := make([]int, len(peers))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(ranks[a], ranks[b]), strings.Compare(peers[a].Upstream, peers[b].Upstream))
	})
	sorted := make([]guard.ShadowPeer, len(peers))
	for i, j := range idx {
		sorted[i] = peers[j]
	}
	return guard.NewShadows(own, sorted)
}

// shadowsFor is the index connection conn's tools and requests are
// checked with now (against every other upstream's tools, when conn's
// were never recorded).
func (b *shadowBook) shadowsFor(conn string) *guard.Shadows {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.offers[conn]
	if o == nil {
		g, _, _ := strings.Cut(conn, "@")
		o = &shadowOffer{group: g}
	}
	return b.shadowsLocked(o)
}

// sigOf is what the check finds for o's tools, as one string.
func sigOf(s *guard.Shadows, o *shadowOffer) string {
	var b strings.Builder
	for _, t := range o.tools {
		if f, ok := s.Check(t.Name, t.Description, o.texts[t.Name]); ok {
			b.WriteString(t.Name)
			b.WriteByte(0)
			b.WriteString(f.Explain)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// offered records the tools connection conn offers now and returns the
// index its screen checks them with (nil when it does not judge). Other
// connections whose findings this changes are fetched again.
func (b *shadowBook) offered(conn string, o *shadowOffer) *guard.Shadows {
	b.mu.Lock()
	if b.offers == nil {
		b.offers = map[string]*shadowOffer{}
	}
	b.offers[conn] = o
	var s *guard.Shadows
	if o.judged {
		s = b.shadowsLocked(o)
		o.sig = sigOf(s, o)
	}
	stale := b.staleLocked(conn)
	b.mu.Unlock()
	b.fetchAgain(stale)
	return s
}

// staleLocked lists the judged connections, but skip, whose findings
// differ from those of their last screen. b.mu must be held.
func (b *shadowBook) staleLocked(skip string) []string {
	var stale []string
	for name, p := range b.offers {
		if name == skip || !p.judged {
			continue
		}
		if sigOf(b.shadowsLocked(p), p) != p.sig {
			stale = append(stale, name)
		}
	}
	return stale
}

func (b *shadowBook) fetchAgain(conns []string) {
	if b.refresh == nil {
		return
	}
	for _, c := range conns {
		b.refresh(c)
	}
}

// setOrder records the configured order of the connections (Apply):
// connections no longer configured are forgotten, and any whose findings
// the new order changes are fetched again.
func (b *shadowBook) setOrder(order []string) {
	b.mu.Lock()
	rank := make(map[string]int, len(order))
	conns := make(map[string]bool, len(order))
	for i, name := range order {
		conns[name] = true
		g, _, _ := strings.Cut(name, "@")
		if _, ok := rank[g]; !ok {
			rank[g] = i
		}
	}
	b.rank = rank
	for name := range b.offers {
		if !conns[name] {
			delete(b.offers, name)
		}
	}
	stale := b.staleLocked("")
	b.mu.Unlock()
	b.fetchAgain(stale)
}

// refreshConn fetches connection name's catalog again (and its pending
// replacement's, if a reload is making one).
func (g *Gateway) refreshConn(name string) {
	g.mu.RLock()
	us := []*upstream.Upstream{g.upstreams[name], g.pending[name]}
	g.mu.RUnlock()
	for _, u := range us {
		if u != nil {
			u.Refresh()
		}
	}
}
