package deferq

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/queue"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// startGateway runs a gateway for toml until the test ends.
func startGateway(t *testing.T, toml string) *gateway.Gateway {
	t.Helper()
	cfg, err := config.Parse("t.toml", []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	g := gateway.New(cfg, slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	t.Cleanup(func() {
		stop, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 20*time.Second)
	return g
}

// deliverOne queues one call of ev's tool "rec", runs the queue's real
// delivery loop with Deliver(g) until the entry has at least want
// attempts (or ended), and returns its state.
func deliverOne(t *testing.T, g *gateway.Gateway, tenant string, want int) *gateway.QueuedCall {
	t.Helper()
	q := openQueue(t, &queue.Options{BackoffMin: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	d := Queue{Q: q}
	id, err := d.Defer(t.Context(), tenant, "ev", "rec", json.RawMessage(`{}`), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = q.Run(ctx, Deliver(g)) }()
	defer func() { cancel(); <-done }()
	var qc *gateway.QueuedCall
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if qc, err = d.Status(t.Context(), tenant, id); err != nil {
			t.Fatal(err)
		}
		if qc.Attempts >= want || qc.State == "failed" || qc.State == "done" {
			break
		}
	}
	return qc
}

// A delivery the routing policy refuses (a local-only call, and the
// upstream has no local target) fails the entry for good: it was retried
// forever. The remote target is never called.
func TestDeliverRoutingRefusedIsPermanent(t *testing.T) {
	var calls atomic.Int32
	s := mcp.NewServer(&mcp.Implementation{Name: "cloud", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{Name: "rec", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		calls.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	g := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "ev"
local_only = ["*"]
[[upstreams.targets]]
url = %q
locality = "remote"
`, srv.URL))
	if _, ok := g.Upstream("ev"); !ok {
		t.Fatalf("precondition: the remote target is not connected: %+v", g.Statuses())
	}
	qc := deliverOne(t, g, "", 3)
	if qc.State != "failed" || qc.Attempts != 1 {
		t.Errorf("refused delivery: state %s after %d attempts (%s), want failed after 1", qc.State, qc.Attempts, qc.LastError)
	}
	if !strings.Contains(qc.LastError, "no target of this upstream runs on the device") {
		t.Errorf("last error %q does not say why", qc.LastError)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the remote target received %d calls of a local-only upstream", n)
	}
}

// The Monitor counts a refused delivery as "refused", not as the
// upstream's error: the upstream was never asked.
func TestMonitorCountsRefusal(t *testing.T) {
	m := NewMonitor(prometheus.NewRegistry())
	refusal := &jsonrpc.Error{Code: mcpwire.CodeRoutingRefused, Message: "upstream ev: local-only"}
	fn := m.Deliver(func(context.Context, *queue.Entry) (json.RawMessage, error) { return nil, queue.Permanent(refusal) })
	if _, err := fn(t.Context(), &queue.Entry{Target: "ev"}); err == nil {
		t.Fatal("the refusal was lost")
	}
	for outcome, want := range map[string]float64{"refused": 1, "upstream_error": 0} {
		var d dto.Metric
		if err := m.M.Attempts.WithLabelValues("ev", outcome).Write(&d); err != nil {
			t.Fatal(err)
		}
		if v := d.GetCounter().GetValue(); v != want {
			t.Errorf("%s attempts = %v, want %v", outcome, v, want)
		}
	}
}

// A delivery to an upstream whose targets are all unreachable says so
// (it said `no upstream "ev"`, as if the upstream were not configured)
// and is retried.
func TestDeliverNoTargetConnected(t *testing.T) {
	l := httptest.NewServer(http.NotFoundHandler())
	dead := l.URL + "/mcp"
	l.Close() // nothing listens there any more
	g := startGateway(t, fmt.Sprintf(`
[[upstreams]]
name = "ev"
[[upstreams.targets]]
url = %q
`, dead))
	qc := deliverOne(t, g, "", 2)
	if qc.State == "failed" || qc.State == "done" || qc.Attempts < 2 {
		t.Errorf("delivery with no target connected: state %s after %d attempts, want retried", qc.State, qc.Attempts)
	}
	if want := "upstream ev: no target is connected"; !strings.Contains(qc.LastError, want) {
		t.Errorf("last error %q, want it to say %q", qc.LastError, want)
	}
}
