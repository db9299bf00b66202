package guard

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	detect "github.com/mcpedge/mcpedge/internal/guard"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type policy Policy

func (p policy) For(*pipeline.Call) Policy { return Policy(p) }

const awsKey = "AKIAIOSFODNN7EXAMPLE"

func answer(res mcp.Result) pipeline.Handler {
	return pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) { return res, nil })
}

func TestToolResultScanned(t *testing.T) {
	var noted detect.Counts
	s := New(policy{Redact: true}, &Options{Noted: func(_ context.Context, _ *pipeline.Call, c detect.Counts) { noted = c }})
	orig := &mcp.CallToolResult{
		Content: []mcp.Content{
			&mcp.TextContent{Text: "key " + awsKey + " \x1b[31mred\x1b[0m"},
			&mcp.ImageContent{MIMEType: "image/png", Data: []byte("x")},
			&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///a", Text: "hi\U000E0041"}},
		},
		StructuredContent: map[string]any{"list": []any{"ok", "token=" + "Zq8xW2pL9vR4tY7u"}, "n": 1.0},
	}
	call := &pipeline.Call{Method: pipeline.MethodCallTool}
	res, err := s.Handle(context.Background(), call, answer(orig))
	if err != nil {
		t.Fatal(err)
	}
	if call.Redacted[detect.KindAWSKey] != 1 {
		t.Errorf("call.Redacted = %v, for the audit stage", call.Redacted)
	}
	got := res.(*mcp.CallToolResult)
	if got == orig {
		t.Fatal("the upstream's result was returned unchanged")
	}
	if txt := got.Content[0].(*mcp.TextContent).Text; txt != "key [REDACTED:aws_access_key] red" {
		t.Errorf("text = %q", txt)
	}
	if txt := got.Content[2].(*mcp.EmbeddedResource).Resource.Text; txt != "hi" {
		t.Errorf("embedded = %q", txt)
	}
	if v := got.StructuredContent.(map[string]any)["list"].([]any)[1]; v != "token=[REDACTED:secret]" {
		t.Errorf("structured = %q", v)
	}
	// The upstream's value is not changed in place.
	if !strings.Contains(orig.Content[0].(*mcp.TextContent).Text, awsKey) || orig.StructuredContent.(map[string]any)["list"].([]any)[1] == "token=[REDACTED:secret]" {
		t.Error("the original result was modified")
	}
	want := detect.Counts{detect.KindAWSKey: 1, detect.KindEscape: 2, detect.KindTag: 1, detect.KindSecret: 1}
	if len(noted) != len(want) {
		t.Errorf("noted %v, want %v", noted, want)
	}
	for k, n := range want {
		if noted[k] != n {
			t.Errorf("noted %v, want %v", noted, want)
		}
	}
}

func TestUnchangedAndOff(t *testing.T) {
	clean := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "all good"}}}
	for _, p := range []Policy{{}, {Redact: true}} {
		res, _ := New(policy(p), nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(clean))
		if res != clean {
			t.Errorf("%+v: a clean result was replaced", p)
		}
	}
	secret := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: awsKey}}}
	res, _ := New(policy{}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(secret))
	if res != secret {
		t.Error("off: the result was changed")
	}
	res, _ = New(policy{Redact: true}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodComplete}, answer(secret))
	if res != secret {
		t.Error("completion/complete was scanned")
	}
}

func TestReadResourceScanned(t *testing.T) {
	r := &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "x://a", Text: "k " + awsKey + "\x1b[2J"}, {URI: "x://b", Blob: []byte(awsKey)}}}
	s := New(policy{Redact: true}, nil)
	res, _ := s.Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodReadResource}, answer(r))
	got := res.(*mcp.ReadResourceResult)
	if got.Contents[0].Text != "k [REDACTED:aws_access_key]" || string(got.Contents[1].Blob) != awsKey || r.Contents[0].Text != "k "+awsKey+"\x1b[2J" {
		t.Errorf("got %+v / original %+v", got.Contents[0], r.Contents[0])
	}
	c, next := wireCall(`{"contents":[{"uri":"x://a","text":"\u202egnp.exe"}]}`)
	c.Method = pipeline.MethodReadResource
	res, err := s.Handle(context.Background(), c, next)
	if err != nil {
		t.Fatal(err)
	}
	if rr, ok := res.(*mcp.ReadResourceResult); !ok || rr.Contents[0].Text != "gnp.exe" {
		t.Errorf("wire read = %#v", res)
	}
}

// Questions (sampling, elicitation) are scanned in a copy, and only when
// the policy says so; an input-required result's questions are scanned
// with the result.
func TestQuestionsScanned(t *testing.T) {
	s := New(nil, nil)
	sp := &mcp.CreateMessageWithToolsParams{SystemPrompt: "be\x1b[8m quiet", Messages: []*mcp.SamplingMessageV2{{Role: "user", Content: []mcp.Content{&mcp.TextContent{Text: "key " + awsKey}}}}}
	if out, n := s.Question(Policy{}, sp); out != any(sp) || n != nil {
		t.Error("scanned with the policy off")
	}
	out, n := s.Question(Policy{Redact: true}, sp)
	got := out.(*mcp.CreateMessageWithToolsParams)
	if got.SystemPrompt != "be quiet" || got.Messages[0].Content[0].(*mcp.TextContent).Text != "key [REDACTED:aws_access_key]" || n[detect.KindAWSKey] != 1 {
		t.Errorf("sampling = %q %+v, counts %v", got.SystemPrompt, got.Messages[0].Content[0], n)
	}
	if sp.SystemPrompt != "be\x1b[8m quiet" || sp.Messages[0].Content[0].(*mcp.TextContent).Text != "key "+awsKey {
		t.Error("the upstream's params were changed in place")
	}
	ep := &mcp.ElicitParams{Message: "ok", RequestedSchema: json.RawMessage(`{"properties":{"a":{"description":"x\u2066y"}}}`)}
	out, _ = s.Question(Policy{Redact: true}, ep)
	if e := out.(*mcp.ElicitParams); e.Message != "ok" || e.RequestedSchema.(map[string]any)["properties"].(map[string]any)["a"].(map[string]any)["description"] != "xy" {
		t.Errorf("elicitation = %+v", e)
	}
	clean := &mcp.ElicitParams{Message: "ok"}
	if out, _ := s.Question(Policy{Redact: true}, clean); out != any(clean) {
		t.Error("a clean question was copied")
	}
	r := &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"q": &mcp.ElicitParams{Message: "pass\u200bword?"}}}
	res, _ := New(policy{Redact: true}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(r))
	if e := res.(*mcp.CallToolResult).InputRequests["q"].(*mcp.ElicitParams); e.Message != "password?" {
		t.Errorf("input request = %q", e.Message)
	}
}

func TestPersonalData(t *testing.T) {
	r := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "mail bob@example.com"}}}
	res, _ := New(policy{Redact: true}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(r))
	if res != r {
		t.Error("personal data redacted without being asked")
	}
	res, _ = New(policy{Redact: true, PersonalData: true}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(r))
	if txt := res.(*mcp.CallToolResult).Content[0].(*mcp.TextContent).Text; txt != "mail [REDACTED:email]" {
		t.Errorf("text = %q", txt)
	}
}

func TestPromptScanned(t *testing.T) {
	r := &mcp.GetPromptResult{Description: "d\u200b", Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "use " + awsKey}}}}
	res, _ := New(policy{Redact: true}, nil).Handle(context.Background(), &pipeline.Call{Method: pipeline.MethodGetPrompt}, answer(r))
	got := res.(*mcp.GetPromptResult)
	if got.Description != "d" || got.Messages[0].Content.(*mcp.TextContent).Text != "use [REDACTED:aws_access_key]" {
		t.Errorf("got %+v %+v", got, got.Messages[0].Content)
	}
	if r.Messages[0].Content.(*mcp.TextContent).Text != "use "+awsKey {
		t.Error("the original prompt was modified")
	}
}

// wireCall is a hot-path call whose terminal left raw in the Wire and
// returns its summary.
func wireCall(raw string) (*pipeline.Call, pipeline.Handler) {
	c := &pipeline.Call{Method: pipeline.MethodCallTool, Wire: &pipeline.Wire{}}
	next := pipeline.HandlerFunc(func(context.Context, *pipeline.Call) (mcp.Result, error) {
		sum := &mcp.CallToolResult{}
		c.Wire.SetResult([]byte(raw), sum, nil)
		return sum, nil
	})
	return c, next
}

func TestWire(t *testing.T) {
	s := New(policy{Redact: true}, nil)
	c, next := wireCall(`{"content":[{"type":"text","text":"plain text"}]}`)
	res, err := s.Handle(context.Background(), c, next)
	if err != nil || res != c.Wire.Summary {
		t.Fatalf("a clean wire result was not relayed as bytes: %v %v", res, err)
	}
	c, next = wireCall(`{"content":[{"type":"text","text":"k \u001b[2J` + awsKey + `"}],"isError":true}`)
	res, err = s.Handle(context.Background(), c, next)
	if err != nil {
		t.Fatal(err)
	}
	if res == c.Wire.Summary {
		t.Fatal("a result with a secret was relayed as bytes")
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"k [REDACTED:aws_access_key]"`) || !strings.Contains(string(b), `"isError":true`) {
		t.Errorf("result = %s", b)
	}
	c, next = wireCall(`{"content":[{"type":"text","text":"é fine"}]}`)
	if res, _ := s.Handle(context.Background(), c, next); res != c.Wire.Summary {
		t.Error("decoded but unchanged: the bytes must still be relayed")
	}
	c, next = wireCall(`{"content":"AKIAIOSFODNN7EXAMPLE"}`)
	if _, err := s.Handle(context.Background(), c, next); err == nil || !strings.Contains(err.Error(), "guard: decoding") {
		t.Errorf("undecodable result: err = %v", err)
	}
}

// With Policy.Judge, the questions of an input-required result go to
// Options.Judge, with or without Redact: a changed question is relayed in
// a copy of the result, an error is the call's, and a result without
// questions, decoded or as bytes, is left as it is.
func TestInputRequestsJudged(t *testing.T) {
	var asked []string
	judge := func(_ context.Context, _ *pipeline.Call, method string, q any) (any, error) {
		asked = append(asked, method)
		switch x := q.(type) {
		case *mcp.CreateMessageParams:
			if strings.Contains(x.SystemPrompt, "evil") {
				return nil, errors.New("refused")
			}
			cp := *x
			cp.SystemPrompt = "[warned] " + cp.SystemPrompt
			return &cp, nil
		}
		return q, nil
	}
	for _, redact := range []bool{false, true} {
		asked = nil
		s := New(policy{Redact: redact, Judge: true}, &Options{Judge: judge})
		q := &mcp.CreateMessageParams{SystemPrompt: "be brief", Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hi"}}}}
		orig := &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"s": q, "e": &mcp.ElicitParams{Message: "name?"}}}
		res, err := s.Handle(t.Context(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(orig))
		if err != nil {
			t.Fatal(err)
		}
		got := res.(*mcp.CallToolResult)
		if got == orig || got.InputRequests["s"].(*mcp.CreateMessageParams).SystemPrompt != "[warned] be brief" || q.SystemPrompt != "be brief" || len(asked) != 2 {
			t.Errorf("redact %v: %+v, asked %v", redact, got.InputRequests["s"], asked)
		}
		evil := &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"s": &mcp.CreateMessageParams{SystemPrompt: "evil"}}}
		if _, err := s.Handle(t.Context(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(evil)); err == nil || err.Error() != "refused" {
			t.Errorf("redact %v: a refused question: %v", redact, err)
		}
		plain := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}
		if res, err := s.Handle(t.Context(), &pipeline.Call{Method: pipeline.MethodCallTool}, answer(plain)); err != nil || res != plain {
			t.Errorf("redact %v: a plain result: %v %v", redact, res, err)
		}
	}
	// Bytes on the hot path: decoded only when they hold inputRequests.
	asked = nil
	s := New(policy{Judge: true}, &Options{Judge: judge})
	raw := []byte(`{"content":[{"type":"text","text":"ok"}]}`)
	w := &pipeline.Wire{Result: raw, Summary: &mcp.CallToolResult{}}
	if res, err := s.Handle(t.Context(), &pipeline.Call{Method: pipeline.MethodCallTool, Wire: w}, answer(w.Summary)); err != nil || res != w.Summary || len(asked) != 0 {
		t.Errorf("bytes without questions: %v %v %v", res, err, asked)
	}
}
