package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/hub"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestFleetPinsOnTheRealBinary: a hub and two edges of one tenant, each
// edge with its own copy of our hostile server (hostile_test.go) as
// upstream "hs". The edges pin its tools on the hub; when one edge's copy
// changes "fetch" (a rug pull), that edge keeps serving the pinned
// definition and the change is pending on the hub; one approval there, with
// mcpedge pins approve, makes every edge of the tenant serve it.
func TestFleetPinsOnTheRealBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	hubEnv := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN="}
	hubCfg := writeConfig(t, "[auth]\nrevocation_poll = \"500ms\"\n")
	hp := startServe(t, hubEnv, "--config", hubCfg)
	cli(t, hubEnv, "tenant", "create", "edges", "--config", hubCfg, "--upstreams", "*")
	hostile := "\n[[upstreams]]\nname = \"hs\"\ntransport = \"stdio\"\ncommand = " + quoteTOML(self) + "\nenv = { " + hostileEnv + " = \"stdio\" }\n"
	startEdge := func(name string) (*gatewayProc, *mcp.ClientSession) {
		tok := lastLine(cli(t, hubEnv, "hub", "token", "create", "--config", hubCfg, "--tenant", "edges"))
		env := []string{"XDG_DATA_HOME=" + t.TempDir(), "MCPEDGE_ADMIN_KEY=" + testAdminKey, "MCPEDGE_AUTH_TOKEN=", "MCPEDGE_ENROLL_TOKEN=" + tok}
		cfg := writeConfig(t, "[device]\ntpm = \"off\"\n[hub]\nurl = \""+hp.URL+"\"\nenroll_token = \"${MCPEDGE_ENROLL_TOKEN}\"\nname = \""+name+"\"\ntimeout = \"10s\"\n"+hostile)
		ep := startServe(t, env, "--config", cfg)
		ep.waitReadyAuth(t, testAdminKey, "hs", "hub")
		cs, err := connectAs(t, ep.URL+"/mcp", testAdminKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ep, cs
	}
	fetchSays := func(cs *mcp.ClientSession) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for tl, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if tl.Name == "hs__fetch" {
				return tl.Description
			}
		}
		return ""
	}
	type hubPin struct {
		Upstream, Kind, Name, Hash string
		OfferedHash                string `json:"offered_hash"`
	}
	hubPins := func() []hubPin {
		var out []hubPin
		if err := json.Unmarshal([]byte(cli(t, hubEnv, "pins", "ls", "--json", "--config", hubCfg)), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	_, a := startEdge("edge-a")
	// Edge a pins hs's tools on the hub, in the tenant's fleet.
	var fleet string
	waitFor(t, 30*time.Second, "edge a's pins on the hub", func() bool {
		for _, p := range hubPins() {
			if p.Kind == "tool" && p.Name == "fetch" && strings.HasPrefix(p.Upstream, "edge.") && strings.HasSuffix(p.Upstream, ".hs") {
				fleet = p.Upstream
				return true
			}
		}
		return false
	})
	_, b := startEdge("edge-b")
	if d := fetchSays(b); d != "Fetches a URL." {
		t.Fatalf("edge b serves hs__fetch as %q", d)
	}

	// The rug pull on edge b: held there, pending on the hub.
	if _, err := callText(t, b, "hs__mutate", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	var offered string
	waitFor(t, 30*time.Second, "the change pending on the hub", func() bool {
		for _, p := range hubPins() {
			if p.Upstream == fleet && p.Name == "fetch" && p.OfferedHash != "" {
				offered = p.OfferedHash
				return true
			}
		}
		return false
	})
	if d := fetchSays(b); d != "Fetches a URL." {
		t.Errorf("after the rug pull edge b serves %q, want the fleet's pin", d)
	}
	if !strings.Contains(cli(t, hubEnv, "pins", "diff", fleet, "tool", "fetch", "--config", hubCfg), "send_email") {
		t.Error("pins diff on the hub does not show the change")
	}

	// One approval on the hub: both edges serve it.
	cli(t, hubEnv, "pins", "approve", fleet, "tool", "fetch", "--hash", offered, "--config", hubCfg)
	for name, cs := range map[string]*mcp.ClientSession{"a": a, "b": b} {
		waitFor(t, 40*time.Second, "edge "+name+" to serve the approved definition", func() bool {
			return strings.Contains(fetchSays(cs), "send_email")
		})
	}
	if tn := strings.TrimSuffix(strings.TrimPrefix(fleet, "edge."), ".hs"); fleet != hub.FleetPrefix(tn)+"hs" {
		t.Errorf("fleet upstream %q", fleet)
	}
}
