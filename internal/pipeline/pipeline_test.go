package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// recStage records that it ran, then calls next (or answers itself).
type recStage struct {
	name   string
	log    *[]string
	answer bool
}

func (s recStage) Name() string { return s.name }

func (s recStage) Handle(ctx context.Context, c *Call, next Handler) (mcp.Result, error) {
	*s.log = append(*s.log, s.name)
	if s.answer {
		return &mcp.CallToolResult{}, nil
	}
	return next.Handle(ctx, c)
}

func stagesFor(log *[]string, answer string) ([]Stage, Stage) {
	var ss []Stage
	order := Order()
	for _, e := range order[:len(order)-1] {
		ss = append(ss, recStage{name: e.Name, log: log, answer: e.Name == answer})
	}
	return ss, recStage{name: order[len(order)-1].Name, log: log, answer: true}
}

func TestCompileRunsStagesInOrderPerMethod(t *testing.T) {
	var log []string
	ss, term := stagesFor(&log, "")
	ch, err := Compile(ss, term)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range Methods() {
		log = nil
		c := &Call{Method: m}
		if _, err := ch.Handle(context.Background(), c); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		var want []string
		for _, e := range Order() {
			if e.appliesTo(m) {
				want = append(want, e.Name)
			}
		}
		if !slices.Equal(log, want) {
			t.Errorf("%s ran %v, want %v", m, log, want)
		}
		if !slices.Equal(ch.Stages(m), want) {
			t.Errorf("%s: Stages() = %v, want %v", m, ch.Stages(m), want)
		}
		if c.AnsweredBy != "forward" {
			t.Errorf("%s: AnsweredBy = %q, want forward", m, c.AnsweredBy)
		}
	}
	// Stages that do not apply are not run: audit is for tools/call only.
	if slices.Contains(ch.Stages(MethodGetPrompt), "audit") || !slices.Contains(ch.Stages(MethodCallTool), "audit") {
		t.Errorf("audit applies to %v / %v", ch.Stages(MethodCallTool), ch.Stages(MethodGetPrompt))
	}
}

func TestAnsweredByIsTheStageThatAnswered(t *testing.T) {
	var log []string
	ss, term := stagesFor(&log, "cache")
	ch, err := Compile(ss, term)
	if err != nil {
		t.Fatal(err)
	}
	c := &Call{Method: MethodCallTool}
	if _, err := ch.Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if c.AnsweredBy != "cache" {
		t.Fatalf("AnsweredBy = %q, want cache", c.AnsweredBy)
	}
	if slices.Contains(log, "route") || slices.Contains(log, "forward") {
		t.Fatalf("stages below the answering one ran: %v", log)
	}
}

func TestCompileRefusesUnknownDuplicateAndWrongTerminal(t *testing.T) {
	var log []string
	term := recStage{name: "forward", log: &log}
	for _, tc := range []struct {
		name   string
		stages []Stage
		term   Stage
		want   string
	}{
		{"unknown stage", []Stage{recStage{name: "authorise", log: &log}}, term, `"authorise" is not in the order`},
		{"twice", []Stage{recStage{name: "cache", log: &log}, recStage{name: "cache", log: &log}}, term, "given twice"},
		{"terminal not last", nil, recStage{name: "route", log: &log}, "terminal stage is \"route\""},
		{"no terminal", nil, nil, "no terminal"},
		{"nil stage", []Stage{nil}, term, "nil stage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.stages, tc.term)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestMissingStagesAreLeftOut(t *testing.T) {
	var log []string
	ch, err := Compile([]Stage{recStage{name: "route", log: &log}}, recStage{name: "forward", log: &log, answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.Stages(MethodCallTool); !slices.Equal(got, []string{"route", "forward"}) {
		t.Fatalf("stages = %v", got)
	}
	if got := ch.Stages(MethodComplete); !slices.Equal(got, []string{"forward"}) {
		t.Fatalf("completion stages = %v (route does not apply)", got)
	}
	if _, err := ch.Handle(context.Background(), &Call{Method: "tools/list"}); err == nil || !strings.Contains(err.Error(), `"tools/list" does not go through the pipeline`) {
		t.Fatalf("unknown method: err = %v", err)
	}
}

func TestTerminalCallingNextIsAnError(t *testing.T) {
	var log []string
	ch, err := Compile(nil, recStage{name: "forward", log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Handle(context.Background(), &Call{Method: MethodCallTool}); err == nil || !strings.Contains(err.Error(), "terminal stage called next") {
		t.Fatalf("err = %v", err)
	}
}

// suspender hands the call on through the context, as the gateway's
// dispatch stage hands it to the SDK server.
type suspender struct {
	run func(ctx context.Context) (mcp.Result, error)
}

func (suspender) Name() string { return "dispatch" }

func (s suspender) Handle(ctx context.Context, c *Call, next Handler) (mcp.Result, error) {
	return s.run(Suspend(ctx, c, next))
}

func TestSuspendResumeOnceAndAfter(t *testing.T) {
	var log []string
	var resumed, again bool
	var sawCall *Call
	disp := suspender{run: func(ctx context.Context) (mcp.Result, error) {
		c, next, ok := Resume(ctx, MethodCallTool)
		resumed = ok
		if _, _, ok2 := Resume(ctx, MethodCallTool); ok2 {
			again = true
		}
		if _, _, ok3 := Resume(ctx, MethodGetPrompt); ok3 {
			return nil, errors.New("resumed as another method")
		}
		sawCall = c
		return next.Handle(ctx, c)
	}}
	ch, err := Compile([]Stage{recStage{name: "audit", log: &log}, disp, recStage{name: "route", log: &log}}, recStage{name: "forward", log: &log, answer: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &Call{Method: MethodCallTool}
	if _, err := ch.Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if !resumed || again || sawCall != c {
		t.Fatalf("resumed=%v again=%v same call=%v", resumed, again, sawCall == c)
	}
	if !slices.Equal(log, []string{"audit", "route", "forward"}) {
		t.Fatalf("ran %v", log)
	}
	log = nil
	after := ch.After(MethodCallTool, "dispatch")
	if _, err := after.Handle(context.Background(), &Call{Method: MethodCallTool}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(log, []string{"route", "forward"}) {
		t.Fatalf("After(dispatch) ran %v", log)
	}
	if _, _, ok := Resume(context.Background(), MethodCallTool); ok {
		t.Fatal("Resume without a suspended call succeeded")
	}
}

func TestOrderEndsInForwardAndNamesAreUnique(t *testing.T) {
	order := Order()
	seen := map[string]bool{}
	for _, e := range order {
		if seen[e.Name] {
			t.Fatalf("stage %q twice in the order", e.Name)
		}
		seen[e.Name] = true
		for _, m := range e.Methods {
			if !slices.Contains(Methods(), m) {
				t.Fatalf("stage %q applies to %q, which the pipeline does not carry", e.Name, m)
			}
		}
	}
	if order[len(order)-1].Name != "forward" {
		t.Fatalf("the order ends with %q", order[len(order)-1].Name)
	}
}

// argcheck needs the tool the SDK server (or the hot path) found, so it
// comes after dispatch; a refused call must never be queued, cached or
// routed, and its refusal must be audited, after authorization.
func TestArgcheckPlace(t *testing.T) {
	var names []string
	for _, e := range Order() {
		names = append(names, e.Name)
	}
	at := slices.Index(names, "argcheck")
	if at < 0 {
		t.Fatal("argcheck is not in the order")
	}
	for _, before := range []string{"audit", "authorize", "dispatch"} {
		if slices.Index(names, before) > at {
			t.Errorf("argcheck runs before %s: %v", before, names)
		}
	}
	for _, after := range []string{"defer", "cache", "route", "forward"} {
		if slices.Index(names, after) < at {
			t.Errorf("argcheck runs after %s: %v", after, names)
		}
	}
}
