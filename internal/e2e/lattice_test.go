package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/gateway"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
	"github.com/mcpedge/mcpedge/internal/telemetry"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// latticeGateway starts a gateway with the built-in lattice upstream and its
// REST API, as `mcpedge serve` wires them.
func latticeGateway(t *testing.T) string {
	t.Helper()
	svc := latticesvc.New(latticesvc.Options{DataDir: t.TempDir(), Logger: logger(t)})
	g := gateway.New(config.Default(), logger(t), telemetry.NewMetrics())
	g.AddBuiltin("lattice", latticesvc.NewMCPServer(svc))
	ctx, cancel := context.WithCancel(context.Background())
	g.Start(ctx)
	hs := httptest.NewServer(g.Handler(gateway.HTTPOptions{MaxBodyBytes: 1 << 20, MaxJSONDepth: 64, API: latticesvc.RESTHandler(svc)}))
	t.Cleanup(func() {
		closeSessions(g)
		hs.Close()
		stop, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		g.Stop(stop)
		cancel()
	})
	g.WaitAttempted(ctx, 10*time.Second)
	return hs.URL
}

// closeSessions closes the gateway's client sessions, whether
// CloseSessions takes a context (bounding the goodbyes) or not.
func closeSessions(g any) {
	switch c := g.(type) {
	case interface{ CloseSessions(context.Context) }:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.CloseSessions(ctx)
	case interface{ CloseSessions() }:
		c.CloseSessions()
	}
}

// structured returns a tool result's structured content as generic JSON.
func structured(t *testing.T, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
	return m
}

// checkManhattanPath checks that p is a walk of unit steps from `from` to
// `to` in the box dims whose length is the Manhattan distance.
func checkManhattanPath(t *testing.T, sc map[string]any, dims, from, to []int) {
	t.Helper()
	want := 0
	for i := range from {
		want += max(from[i]-to[i], to[i]-from[i])
	}
	if l, _ := sc["length"].(float64); int(l) != want || sc["reachable"] != true {
		t.Fatalf("length %v reachable %v, want %d", sc["length"], sc["reachable"], want)
	}
	var path [][]int
	b, _ := json.Marshal(sc["path"])
	if err := json.Unmarshal(b, &path); err != nil || len(path) != want+1 {
		t.Fatalf("path %s (%v)", b, err)
	}
	if !slices.Equal(path[0], from) || !slices.Equal(path[want], to) {
		t.Fatalf("path runs %v → %v", path[0], path[want])
	}
	for i := 1; i < len(path); i++ {
		d := 0
		for k := range dims {
			if path[i][k] < 0 || path[i][k] >= dims[k] {
				t.Fatalf("path point %v outside %v", path[i], dims)
			}
			d += max(path[i][k]-path[i-1][k], path[i-1][k]-path[i][k])
		}
		if d != 1 {
			t.Fatalf("step %d %v → %v is not a unit step", i, path[i-1], path[i])
		}
	}
	mem, _ := sc["memory"].(map[string]any)
	for _, k := range []string{"clean_bytes", "borrowed_bytes", "explicit_adjacency_bytes"} {
		if _, ok := mem[k]; !ok {
			t.Errorf("memory lacks %s: %v", k, mem)
		}
	}
}

// TestLatticeBuiltin: the lattice tools through the gateway, on /mcp
// (prefixed) and /mcp/lattice (unprefixed), plus the REST API through the
// gateway's /api/ guard.
func TestLatticeBuiltin(t *testing.T) {
	url := latticeGateway(t)
	dims, from, to := []int{50, 50, 50}, []int{0, 0, 0}, []int{49, 49, 49}
	args := map[string]any{"dims": dims, "boundary": "open", "from": from, "to": to}

	agg := goClient(t, url+"/mcp", nil, "2025-11-25")
	tools, err := agg.ListTools(ctxT(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		if strings.HasPrefix(tl.Name, "lattice__") {
			names = append(names, tl.Name)
			if tl.OutputSchema == nil {
				t.Errorf("%s lost its output schema", tl.Name)
			}
		}
	}
	slices.Sort(names)
	want := []string{"lattice__lattice_create", "lattice__lattice_delete", "lattice__lattice_get", "lattice__lattice_list", "lattice__lattice_path", "lattice__lattice_transform"}
	if !slices.Equal(names, want) {
		t.Errorf("aggregated lattice tools %v, want %v", names, want)
	}
	res, err := agg.CallTool(ctxT(t, 20*time.Second), &mcp.CallToolParams{Name: "lattice__lattice_path", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("/mcp lattice__lattice_path: %v %v", err, text(t, res))
	}
	checkManhattanPath(t, structured(t, res), dims, from, to)

	per := goClient(t, url+"/mcp/lattice", nil, "2025-11-25")
	if n := per.InitializeResult().ServerInfo.Name; n != "mcpedge-lattice" {
		t.Errorf("/mcp/lattice server %q", n)
	}
	res, err = per.CallTool(ctxT(t, 20*time.Second), &mcp.CallToolParams{Name: "lattice_path", Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("/mcp/lattice lattice_path: %v %v", err, text(t, res))
	}
	checkManhattanPath(t, structured(t, res), dims, from, to)

	// Input the tool's inputSchema forbids is refused by the gateway's
	// argument check (-32602 naming the path) before it reaches the tool;
	// bad input the schema cannot express is the tool's own error, with a
	// clear message, not a protocol error.
	_, err = agg.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "lattice__lattice_path", Arguments: map[string]any{"dims": []int{50, 0}, "from": []int{0, 0}, "to": []int{1, 0}}})
	if err == nil || !strings.Contains(err.Error(), "arguments do not match the tool's inputSchema: at /dims/1: minimum: got 0, want 1") {
		t.Errorf("input the schema forbids: %v", err)
	}
	res, err = agg.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "lattice__lattice_path", Arguments: map[string]any{"from": []int{0, 0}, "to": []int{1, 0}}})
	if err != nil || !res.IsError || !strings.Contains(text(t, res), "no lattice given") {
		t.Errorf("bad input: %v %v", err, res)
	}

	// REST through the gateway: create, then path on the stored lattice.
	post := func(path string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", url+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		return resp.StatusCode, m
	}
	st, created := post("/api/lattices", map[string]any{"name": "cube", "dims": dims})
	id, _ := created["id"].(string)
	if st != 201 || id == "" {
		t.Fatalf("REST create: %d %v", st, created)
	}
	st, p := post("/api/lattices/"+id+"/path", map[string]any{"from": from, "to": to})
	if st != 200 || p["lattice_id"] != id {
		t.Fatalf("REST path: %d %v", st, p)
	}
	checkManhattanPath(t, p, dims, from, to)
	// The stored lattice is visible to the tools too.
	res, err = per.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: "lattice_get", Arguments: map[string]any{"lattice_id": id}})
	if err != nil || res.IsError || structured(t, res)["name"] != "cube" {
		t.Errorf("lattice_get of a REST-created lattice: %v %v", err, res)
	}
	// REST bad input: 400 with a JSON error; the gateway's strict JSON
	// check answers duplicate keys before the handler sees them.
	if st, e := post("/api/lattices", map[string]any{"dims": []int{-1}}); st != 400 || !strings.Contains(e["error"].(map[string]any)["message"].(string), "dims[0] is -1") {
		t.Errorf("REST bad input: %d %v", st, e)
	}
	req, _ := http.NewRequest("POST", url+"/api/lattices", strings.NewReader(`{"dims":[2],"dims":[3]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("duplicate keys: %d", resp.StatusCode)
	}
}
