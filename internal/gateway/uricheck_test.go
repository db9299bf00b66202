package gateway

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestResourceURIClimbingOutIsRefused: an upstream serving files under a
// root through a template is never asked for a path that climbs out of
// it with "..", plain or percent-encoded, on /mcp or /mcp/<upstream>; a
// plain path is read as before.
func TestResourceURIClimbingOutIsRefused(t *testing.T) {
	var asked atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1"}, nil)
	s.AddResourceTemplate(&mcp.ResourceTemplate{Name: "doc", URITemplate: "file:///srv/docs/{+path}"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			asked.Add(1)
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "content of " + r.Params.URI}}}, nil
		})
	up := startHTTPUpstream(t, s)
	_, url := startGateway(t, "[server]\n"+upstreamBlock("files", up))
	for _, endpoint := range []string{url + "/mcp", url + "/mcp/files"} {
		cs := dialClient(t, endpoint, nil, "2025-11-25")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///srv/docs/readme.md"})
		if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, "readme.md") {
			t.Fatalf("%s: plain read: %v %+v", endpoint, err, res)
		}
		before := asked.Load()
		for _, uri := range []string{"file:///srv/docs/../../etc/passwd", "file:///srv/docs/%2e%2e/%2e%2e/etc/passwd", "file:///srv/docs/..%2F..%2Fetc%2Fpasswd"} {
			_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
			var werr *jsonrpc.Error
			if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(werr.Message, "climbs out") {
				t.Errorf("%s: read %s: %v, want -32602 saying it climbs out", endpoint, uri, err)
			}
		}
		if n := asked.Load(); n != before {
			t.Errorf("%s: the upstream was asked %d times for a URI that climbs out", endpoint, n-before)
		}
		cancel()
	}
}
