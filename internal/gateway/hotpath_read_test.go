package gateway

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// readUpstream is a session-era upstream whose resources answer with each
// kind of read result the hot path relays or completes.
func readUpstream() *mcp.Server {
	s := legacyOnly("docs", nil)
	add := func(uri, mime string, h mcp.ResourceHandler) {
		s.AddResource(&mcp.Resource{URI: uri, Name: strings.TrimPrefix(uri, "mem://docs/"), MIMEType: mime}, h)
	}
	contents := func(cs ...*mcp.ResourceContents) mcp.ResourceHandler {
		return func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: cs}, nil
		}
	}
	add("mem://docs/plain", "text/plain", contents(&mcp.ResourceContents{URI: "mem://docs/plain", MIMEType: "text/plain", Text: "héllo \u2028 \"q\" 🎉"}))
	add("mem://docs/blob", "application/octet-stream", contents(&mcp.ResourceContents{URI: "mem://docs/blob", MIMEType: "application/octet-stream", Blob: []byte{0, 1, 2, 255}}))
	// Contents without uri and mimeType: the SDK server fills them in
	// (the read's URI, the listed MIME type), and so must the hot path.
	add("mem://docs/bare", "text/markdown", contents(&mcp.ResourceContents{Text: "# bare"}, &mcp.ResourceContents{URI: "mem://docs/other", Text: "second"}))
	add("mem://docs/meta", "text/plain", func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "mem://docs/meta", MIMEType: "text/plain", Text: "m"}},
			Meta: mcp.Meta{"com.example/trace": "abc"}}, nil
	})
	add("mem://docs/missing", "text/plain", func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return nil, mcp.ResourceNotFoundError(r.Params.URI)
	})
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "mem://docs/t/{id}", Name: "t", MIMEType: "text/csv"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{Text: "id," + strings.TrimPrefix(r.Params.URI, "mem://docs/t/")}}}, nil
		})
	return s
}

// TestHotPathParityReads: resources/read on the hot path answers what the
// SDK's way answers (hot_path = false), on /mcp and /mcp/<upstream>, for
// plain results relayed as they came and for results the SDK server
// completes; each read was counted on the path it took. An unlisted URI
// on /mcp/<upstream> goes to the upstream as on the SDK's way; on /mcp it
// is the SDK's "not found".
func TestHotPathParityReads(t *testing.T) {
	up := startHTTPUpstream(t, readUpstream())
	gHot, urlHot := hotGateway(t, upstreamBlock("docs", up), true, nil, HTTPOptions{})
	gSDK, urlSDK := hotGateway(t, upstreamBlock("docs", up), false, nil, HTTPOptions{})
	waitTargetsReady(t, gHot, 1)
	waitTargetsReady(t, gSDK, 1)
	count := func(g *Gateway, path, reason string) float64 {
		return counterValue(t, g.edgeMetrics.hot.WithLabelValues(pipeline.MethodReadResource, path, reason))
	}
	for _, ep := range []string{"/mcp", "/mcp/docs"} {
		hot := newRawClientWith(t, urlHot+ep, "", `{}`)
		sdk := newRawClientWith(t, urlSDK+ep, "", `{}`)
		for i, tc := range []struct {
			params string
			hot    bool // taken by the hot path
		}{
			{`{"uri":"mem://docs/plain"}`, true},
			{`{"uri":"mem://docs/blob"}`, true},
			{`{"uri":"mem://docs/bare"}`, true},
			{`{"uri":"mem://docs/meta","_meta":{"com.example/k":"v"}}`, true},
			{`{"uri":"mem://docs/missing"}`, true},
			{`{"uri":"mem://docs/t/42"}`, true},
			{` { "uri" : "mem://docs/plain" , "extra": [1] } `, true},
			{`{"uri":"mem://docs/unlisted"}`, ep != "/mcp"},
			{`{"uri":7}`, false},
		} {
			t.Run(fmt.Sprintf("%s/%d", ep, i), func(t *testing.T) {
				hotBefore := count(gHot, "hot", "")
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"resources/read","params":%s}`, 200+i, tc.params)
				h, s := hot.exchange(body), sdk.exchange(body)
				if got := count(gHot, "hot", "") - hotBefore; (got == 1) != tc.hot {
					t.Errorf("hot path taken %v times, want hot=%v", got, tc.hot)
				}
				if h.Status != http.StatusOK || s.Status != http.StatusOK {
					t.Fatalf("HTTP %d (hot) %d (sdk):\nhot: %s\nsdk: %s", h.Status, s.Status, h.Body, s.Body)
				}
				for _, k := range []string{"jsonrpc", "id", "result"} {
					if hv, sv := h.decoded(k), s.decoded(k); !reflect.DeepEqual(hv, sv) {
						t.Errorf("%s differs:\nhot: %s\nsdk: %s", k, h.Body, s.Body)
					}
				}
				// Errors: the same code; the words may differ where the
				// SDK's way wraps them.
				he, _ := h.decoded("error").(map[string]any)
				se, _ := s.decoded("error").(map[string]any)
				if (he == nil) != (se == nil) || (he != nil && he["code"] != se["code"]) {
					t.Errorf("error differs:\nhot: %s\nsdk: %s", h.Body, s.Body)
				}
				t.Logf("hot: %s", h.Body)
			})
		}
	}
}

// TestHotPathReadCached: a read of an upstream with a cache TTL takes the
// SDK's way (reason "cache"), and the second read is a hit there.
func TestHotPathReadCached(t *testing.T) {
	up := startHTTPUpstream(t, readUpstream())
	g, url := hotGateway(t, upstreamBlock("docs", up)+"[upstreams.cache]\nttl = \"1m\"\n", true, nil, HTTPOptions{})
	waitTargetsReady(t, g, 1)
	c := newRawClientWith(t, url+"/mcp", "", `{}`)
	for i := range 2 {
		a := c.exchange(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"resources/read","params":{"uri":"mem://docs/plain"}}`, i+1))
		res, _ := a.decoded("result").(map[string]any)
		if contents, _ := res["contents"].([]any); len(contents) != 1 {
			t.Fatalf("read %d: %s", i, a.Body)
		}
	}
	if got := counterValue(t, g.edgeMetrics.hot.WithLabelValues(pipeline.MethodReadResource, "sdk", "cache")); got != 2 {
		t.Errorf("reads counted sdk/cache: %v, want 2", got)
	}
}
