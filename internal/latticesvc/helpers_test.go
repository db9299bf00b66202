package latticesvc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// newSvc returns a service on a fresh store, acting for the tenant
// "default" when a call has no principal, with small limits suitable for
// tests (a 2 MiB catalytic region).
func newSvc(t testing.TB, mod ...func(*Options)) *Service {
	t.Helper()
	st := newStore(t)
	o := Options{Store: st, DefaultTenant: addTenant(t, st, "default"), Limits: DefaultLimits(), CatalyticRegionBytes: 2 << 20}
	for _, m := range mod {
		m(&o)
	}
	return New(o)
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// client connects an SDK client to NewMCPServer(svc) in memory.
func client(t testing.TB, svc *Service) *mcp.ClientSession {
	t.Helper()
	srv := NewMCPServer(svc)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctxT(t, 5*time.Second), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctxT(t, 5*time.Second), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.Close(); _ = ss.Close() })
	return cs
}

// call calls a tool and returns the result's text and structured content
// (decoded as generic JSON).
func call(t testing.TB, cs *mcp.ClientSession, name string, args any) (*mcp.CallToolResult, string, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(ctxT(t, 10*time.Second), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	var text strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text.WriteString(tc.Text)
		}
	}
	var sc map[string]any
	if res.StructuredContent != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, &sc); err != nil {
			t.Fatalf("%s: structured content %s: %v", name, b, err)
		}
	}
	return res, text.String(), sc
}

// resolved resolves a schema given as generic JSON.
func resolved(t testing.TB, s any) *jsonschema.Resolved {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var js jsonschema.Schema
	if err := json.Unmarshal(b, &js); err != nil {
		t.Fatalf("schema %s: %v", b, err)
	}
	rs, err := js.Resolve(nil)
	if err != nil {
		t.Fatalf("resolving schema %s: %v", b, err)
	}
	return rs
}

// validate checks a value (any JSON-marshalable) against a schema.
func validate(t testing.TB, s any, v any) error {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var inst any
	if err := json.Unmarshal(b, &inst); err != nil {
		t.Fatal(err)
	}
	return resolved(t, s).Validate(inst)
}

// checkPath checks that path is a walk of unit steps from from to to on
// the lattice of spec, through open points only, of length length.
func checkPath(t testing.TB, spec lattice.Spec, from, to []int64, length int64, path any) {
	t.Helper()
	b, _ := json.Marshal(path)
	var pts [][]int64
	if err := json.Unmarshal(b, &pts); err != nil {
		t.Fatalf("path %s: %v", b, err)
	}
	if int64(len(pts)) != length+1 {
		t.Fatalf("path has %d points for length %d", len(pts), length)
	}
	l, err := lattice.New(spec, lattice.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	eq := func(a, b []int64) bool { return string(must(json.Marshal(a))) == string(must(json.Marshal(b))) }
	if !eq(pts[0], from) || !eq(pts[len(pts)-1], to) {
		t.Fatalf("path runs %v → %v, want %v → %v", pts[0], pts[len(pts)-1], from, to)
	}
	for i, p := range pts {
		if blocked, err := l.IsBlocked(p); err != nil || blocked {
			t.Fatalf("path point %d %v: blocked %v, %v", i, p, blocked, err)
		}
		if i == 0 {
			continue
		}
		d, err := l.Distance(pts[i-1], p)
		if err != nil || d != 1 {
			t.Fatalf("step %d from %v to %v is not a unit step (%d, %v)", i, pts[i-1], p, d, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}
