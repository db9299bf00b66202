package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) lines(t *testing.T) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, s := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if s == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

// TestHubConflictsLoggedOnce: an edge's hub offers items of the same
// names as the edge's own built-in ones (the hub is a gateway too); the
// edge's win, as documented (local first). That is expected: it is said
// once, at info, in one line, not as an error per item at every fetch of
// the hub's catalog. The conflicts stay in the status.
func TestHubConflictsLoggedOnce(t *testing.T) {
	hub := serverWith("hub", builtinStatus, "ev__only")
	hubURL := startHTTPUpstream(t, hub)
	empty := ""
	cfg, err := config.Parse("edge.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Name: HubUpstream, Transport: config.TransportHTTP, URL: hubURL, Prefix: &empty,
		Timeout: config.Duration(5 * time.Second), ConnectTimeout: config.Duration(5 * time.Second), Isolation: config.IsolationShared})

	var buf lockedLog
	g := New(cfg, telemetry.NewLoggerTo(&buf, "info"), telemetry.NewMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 20*time.Second)

	// The hub's catalog changes (and is fetched again) a few times.
	for i := range 5 {
		name := fmt.Sprintf("ev__more%d", i)
		mcp.AddTool(hub, &mcp.Tool{Name: name}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{}, nil, nil
		})
		if !waitFor(t, "the hub's new tool", 20*time.Second, func() bool {
			g.mu.RLock()
			defer g.mu.RUnlock()
			_, ok := g.tools[name]
			return ok
		}) {
			t.Fatalf("the hub's tool %s was not registered", name)
		}
	}
	var conflicts []string
	for _, s := range g.Statuses() {
		if s.Name == HubUpstream {
			conflicts = s.Conflicts
		}
	}
	if len(conflicts) != 1 || !strings.Contains(conflicts[0], builtinStatus) {
		t.Errorf("hub conflicts in the status: %q", conflicts)
	}
	summaries := 0
	for _, l := range buf.lines(t) {
		if l["level"] == "ERROR" || l["level"] == "WARN" {
			t.Errorf("%s at %s: %v", l["msg"], l["level"], l["problem"])
		}
		if strings.HasPrefix(fmt.Sprint(l["msg"]), "hub items not offered") {
			summaries++
			if l["level"] != "INFO" || l["count"] != float64(1) {
				t.Errorf("the summary: %v", l)
			}
		}
	}
	if summaries != 1 {
		t.Errorf("%d summary lines, want 1", summaries)
	}
}

// TestUpstreamConflictWarnedOnce: two configured upstreams that offer the
// same resource is a configuration problem: a warning, once, not at each
// fetch.
func TestUpstreamConflictWarnedOnce(t *testing.T) {
	res := func(who string) *mcp.Server {
		s := mcp.NewServer(&mcp.Implementation{Name: who, Version: "1"}, nil)
		s.AddResource(&mcp.Resource{URI: "file:///same", Name: "same"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{}, nil
		})
		return s
	}
	second := res("b")
	cfg, err := config.Parse("gw.toml", []byte(upstreamBlock("a", startHTTPUpstream(t, res("a")))+upstreamBlock("b", startHTTPUpstream(t, second))))
	if err != nil {
		t.Fatal(err)
	}
	var buf lockedLog
	g := New(cfg, telemetry.NewLoggerTo(&buf, "info"), telemetry.NewMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 20*time.Second)
	for i := range 3 {
		uri := fmt.Sprintf("file:///more%d", i)
		second.AddResource(&mcp.Resource{URI: uri, Name: "more"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{}, nil
		})
		if !waitFor(t, "the new resource", 20*time.Second, func() bool {
			g.mu.RLock()
			defer g.mu.RUnlock()
			_, ok := g.resources[uri]
			return ok
		}) {
			t.Fatalf("resource %s was not registered", uri)
		}
	}
	warned := 0
	for _, l := range buf.lines(t) {
		if l["msg"] == "catalog conflict" {
			warned++
			if l["level"] != "WARN" {
				t.Errorf("a conflict between configured upstreams at %s", l["level"])
			}
		}
	}
	if warned != 1 {
		t.Errorf("the conflict logged %d times, want once", warned)
	}
}
