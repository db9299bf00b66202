package pipeline

import (
	"context"
	"errors"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTracedStagesNest: the stages named in Traced run in spans of their
// own, each the child of the traced stage above it, with the refusing
// stage's span marked; the others and an untraced chain make none.
func TestTracedStagesNest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var log []string
	ss, term := stagesFor(&log, "")
	ch, err := Compile(ss, term, Traced(tp.Tracer("test"), "authorize", "cache", "forward"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := ch.Handle(ctx, &Call{Method: MethodCallTool}); err != nil {
		t.Fatal(err)
	}
	root.End()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byName[s.Name()] = s
	}
	if len(byName) != 4 {
		t.Fatalf("spans %v, want request and the three traced stages", byName)
	}
	parent := root.SpanContext().SpanID()
	for _, n := range []string{"mcpedge.authorize", "mcpedge.cache", "mcpedge.forward"} {
		s, ok := byName[n]
		if !ok {
			t.Fatalf("no span %s", n)
		}
		if s.Parent().SpanID() != parent {
			t.Errorf("%s's parent is %s, want %s", n, s.Parent().SpanID(), parent)
		}
		parent = s.SpanContext().SpanID()
	}
	if !byName["mcpedge.forward"].Attributes()[0].Valid() {
		t.Error("no attributes")
	}

	// A refusal marks the refusing stage's span.
	rec2 := tracetest.NewSpanRecorder()
	tp2 := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec2))
	ss = append(ss[:0:0], ss...)
	for i, s := range ss {
		if s.Name() == "authorize" {
			ss[i] = refuser{}
		}
	}
	ch, _ = Compile(ss, term, Traced(tp2.Tracer("test"), "authorize", "forward"))
	if _, err := ch.Handle(context.Background(), &Call{Method: MethodCallTool}); err == nil {
		t.Fatal("the refusal got lost")
	}
	ended := rec2.Ended()
	if len(ended) != 1 || ended[0].Name() != "mcpedge.authorize" || ended[0].Status().Code != codes.Error {
		t.Errorf("refused: %v", ended)
	}

	// Without Traced: no span at all.
	rec3 := tracetest.NewSpanRecorder()
	tp3 := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec3))
	ss, term = stagesFor(&log, "")
	ch, _ = Compile(ss, term)
	ctx, root = tp3.Tracer("test").Start(context.Background(), "request")
	_, _ = ch.Handle(ctx, &Call{Method: MethodCallTool})
	root.End()
	if n := len(rec3.Ended()); n != 1 {
		t.Errorf("an untraced chain made %d spans", n-1)
	}
}

type refuser struct{}

func (refuser) Name() string { return "authorize" }
func (refuser) Handle(_ context.Context, c *Call, _ Handler) (mcp.Result, error) {
	c.Refused = "authorize"
	return nil, errRefused
}

var errRefused = errors.New("refused")
