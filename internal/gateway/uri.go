package gateway

import (
	"strings"

	"github.com/mcpedge/mcpedge/internal/stage/uricheck"
	"github.com/mcpedge/mcpedge/internal/upstream"
	"github.com/mcpedge/mcpedge/internal/urinorm"
)

// Resource URIs are compared, routed, cached, quarantined and relayed in
// one normal form (internal/urinorm; docs/egress.md, "Resource URIs"): the
// URIs a client names are normalised where a call enters the gateway
// (enterPipeline, the hot path), and those an upstream lists when its
// catalog is fetched (normalCatalogURIs).

// normalURI is uri in the normal form, or uri as it is when the uricheck
// stage will refuse it (a file: URI that climbs with "..": normalising
// would remove the climb and hide it) or it cannot be normalised (the
// upstream judges it).
func normalURI(uri string) string {
	if uricheck.Check(uri) != nil {
		return uri
	}
	if n, err := urinorm.Normalize(uri); err == nil {
		return n
	}
	return uri
}

// normalCatalogURIs puts the URIs of cat's resources and the literal parts
// of its templates in the normal form, so that a client's URI, normalised
// too, finds them. cat is the connection's fresh catalog (its slices are
// its own); a changed item is replaced by a copy, the fetched item is not
// changed.
func normalCatalogURIs(cat *upstream.Catalog) {
	spell := func(n, own string) {
		if cat.URISpelling == nil {
			cat.URISpelling = map[string]string{}
		}
		cat.URISpelling[n] = own
	}
	for i, r := range cat.Resources {
		if r == nil {
			continue
		}
		if n := normalURI(r.URI); n != r.URI {
			spell(n, r.URI)
			cp := *r
			cp.URI = n
			cat.Resources[i] = &cp
		}
	}
	for i, t := range cat.Templates {
		if t == nil {
			continue
		}
		if n := urinorm.Template(t.URITemplate); n != t.URITemplate {
			spell(n, t.URITemplate)
			cp := *t
			cp.URITemplate = n
			cat.Templates[i] = &cp
		}
	}
}

// spelled is uri (in the normal form) as upstream t spells it: the URI it
// lists, or, for a URI of one of its templates it spells otherwise, the
// URI with the template's literal beginning (up to its first expression)
// as the upstream wrote it. Servers that compare URIs as strings (the
// reference SDKs do) find it so.
func spelled(t *upstream.Upstream, uri string) string {
	if t == nil {
		return uri
	}
	sp := t.Catalog().URISpelling
	if len(sp) == 0 {
		return uri
	}
	if own, ok := sp[uri]; ok {
		return own
	}
	for n, own := range sp {
		i := strings.IndexByte(n, '{')
		j := strings.IndexByte(own, '{')
		if i <= 0 || j <= 0 {
			continue
		}
		if rest, ok := strings.CutPrefix(uri, n[:i]); ok {
			return own[:j] + rest
		}
	}
	return uri
}
