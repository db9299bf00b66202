package gateway

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/mcpedge/mcpedge/internal/principal"
	auditstage "github.com/mcpedge/mcpedge/internal/stage/audit"
	"github.com/mcpedge/mcpedge/internal/telemetry"
)

type nopRecorder struct{}

func (nopRecorder) Record(context.Context, *principal.Principal, auditstage.Record) {}

// The chain the gateway compiles follows its mode: authorize only with a
// security layer, audit with a security layer or a call recorder, defer
// only with a queue; every call that reaches an upstream ends in forward.
func TestPipelineWiringFollowsTheMode(t *testing.T) {
	g := New(config.Default(), slog.New(slog.DiscardHandler), telemetry.NewMetrics())
	stages := func(m string) []string { return g.pipe.chain.Load().Stages(m) }
	if got, want := stages(pipeline.MethodCallTool), []string{"dispatch", "argcheck", "explain", "cache", "guard", "route", "forward"}; !slices.Equal(got, want) {
		t.Fatalf("bare gateway: %v, want %v", got, want)
	}
	if got := stages(pipeline.MethodGetPrompt); slices.Contains(got, "argcheck") {
		t.Fatalf("argcheck applies to prompts/get: %v", got)
	}
	g.SetCallAudit(nopRecorder{})
	if got := stages(pipeline.MethodCallTool); got[0] != "audit" || slices.Contains(got, "authorize") {
		t.Fatalf("single-user with a recorder: %v", got)
	}
	g.SetSecurity(&secFake{})
	if got := stages(pipeline.MethodCallTool); !slices.Equal(got[:3], []string{"audit", "authorize", "dispatch"}) {
		t.Fatalf("multi-tenant: %v", got)
	}
	if got := stages(pipeline.MethodGetPrompt); got[0] != "authorize" || slices.Contains(got, "audit") {
		t.Fatalf("multi-tenant prompts/get: %v", got)
	}
	g.SetDeferrer(&fakeDeferrer{})
	if got := stages(pipeline.MethodCallTool); !slices.Contains(got, "defer") || slices.Index(got, "defer") > slices.Index(got, "cache") ||
		slices.Index(got, "argcheck") > slices.Index(got, "defer") {
		t.Fatalf("with a queue: %v", got)
	}
	for _, m := range pipeline.Methods() {
		if got := stages(m); got[len(got)-1] != "forward" || !slices.Contains(got, "dispatch") {
			t.Errorf("%s: %v", m, got)
		}
	}
}
