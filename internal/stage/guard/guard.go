// Package guard is the pipeline stage that scans what a model will read in
// tools/call and prompts/get results: it removes hidden Unicode and
// terminal escape sequences from their text and redacts secrets (and, when
// the upstream's settings ask, personal data), using the detectors of
// internal/guard ([guard] results; docs/guardrails.md, "Scanning").
//
// It sees the call and what the stages below it answered. Text content,
// the text of embedded resources, resource links' titles and
// descriptions, every string of structured content and a prompt's
// description and messages are scanned; images, audio, blobs, _meta and
// object keys are not. When nothing changes it returns the result it was
// given, so a hot-path result's bytes go to the client untouched; when
// something does, it returns a changed copy (never the upstream's value
// changed in place), which the client gets re-encoded.
//
// On the hot path the result is bytes (pipeline.Wire): the stage decodes
// it only when a cheap search of the bytes finds something it might
// change (non-ASCII, a \u escape, or a literal one of the redactor's rules
// needs).
package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	detect "github.com/mcpedge/mcpedge/internal/guard"
	"github.com/mcpedge/mcpedge/internal/mcpwire"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Policy is what the stage does to one call's result.
type Policy struct {
	// Redact normalises and redacts the result; false leaves it alone.
	Redact bool
	// PersonalData also redacts e-mail addresses, phone and card numbers.
	PersonalData bool
}

// A Source says what to do with a call's result. It is called on every
// tools/call and prompts/get and should be a very fast function.
type Source interface {
	For(c *pipeline.Call) Policy
}

// Options configure the stage. Noted, if set, is told what the stage
// removed from a call's result, by kind (internal/guard's Kind…
// constants): the gateway counts it. The stage also leaves the counts in
// the call's Redacted, which the audit stage records.
type Options struct {
	Noted func(ctx context.Context, c *pipeline.Call, removed detect.Counts)
}

// Stage is the guard stage.
type Stage struct {
	src              Source
	secrets, private *detect.Redactor
	o                Options
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage over src; o may be nil. It compiles the
// redactors once.
func New(src Source, o *Options) *Stage {
	s := &Stage{src: src, secrets: detect.NewRedactor(nil), private: detect.NewRedactor(&detect.RedactOptions{PersonalData: true})}
	if o != nil {
		s.o = *o
	}
	return s
}

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "guard" }

// Handle implements [pipeline.Stage].
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if c.Method != pipeline.MethodCallTool && c.Method != pipeline.MethodGetPrompt && c.Method != pipeline.MethodReadResource {
		return next.Handle(ctx, c)
	}
	p := s.src.For(c)
	if !p.Redact {
		return next.Handle(ctx, c)
	}
	res, err := next.Handle(ctx, c)
	if err != nil || res == nil {
		return res, err
	}
	sc := scanner{red: s.secrets}
	if p.PersonalData {
		sc.red = s.private
	}
	var out mcp.Result
	if w := c.Wire; w != nil && w.Result != nil && res == w.Summary {
		if !sc.mayChange(w.Result) {
			return res, nil
		}
		out, err = sc.wire(c.Method, w)
		if err != nil {
			return nil, &jsonrpc.Error{Code: mcpwire.CodeInternalError, Message: "guard: " + err.Error()}
		}
	} else {
		switch r := res.(type) {
		case *mcp.CallToolResult:
			if x := sc.tool(r); x != nil {
				out = x
			}
		case *mcp.GetPromptResult:
			if x := sc.prompt(r); x != nil {
				out = x
			}
		case *mcp.ReadResourceResult:
			if x := sc.read(r); x != nil {
				out = x
			}
		}
	}
	if out == nil {
		return res, nil
	}
	c.Redacted = sc.counts
	if s.o.Noted != nil && sc.counts != nil {
		s.o.Noted(ctx, c, sc.counts)
	}
	return out, nil
}

// scanner scans one result, adding up what it removed.
type scanner struct {
	red    *detect.Redactor
	counts detect.Counts
}

// mayChange reports whether a result's JSON bytes may hold anything the
// scan changes: non-ASCII text, an escape that may spell a control or
// hidden character (\u, \b, \f), or a literal the redactor needs.
func (sc *scanner) mayChange(raw []byte) bool {
	for _, b := range raw {
		if b >= 0x80 {
			return true
		}
	}
	return bytes.Contains(raw, []byte(`\u`)) || bytes.Contains(raw, []byte(`\b`)) || bytes.Contains(raw, []byte(`\f`)) || sc.red.MayMatch(raw)
}

// wireText is the text of a hot-path result's content, or of a prompt
// message's, as the first look decodes it.
type wireText struct {
	Text        string `json:"text"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Resource    *struct {
		Text string `json:"text"`
	} `json:"resource"`
}

// wireLook is what the first look at a hot-path result decodes: the text
// the scan reads, nothing else (the SDK's decoding of a whole result
// costs more than the scan).
type wireLook struct {
	Content           []wireText `json:"content"`
	StructuredContent any        `json:"structuredContent"`
	Description       string     `json:"description"`
	Messages          []struct {
		Content wireText `json:"content"`
	} `json:"messages"`
	Contents []struct {
		Text string `json:"text"`
	} `json:"contents"`
	// InputRequests are an input-required result's questions: every
	// string in them is looked at.
	InputRequests any `json:"inputRequests"`
}

// wouldChange reports whether the scan would change any text of the
// result: the first look, which decodes only the text.
func (sc *scanner) wouldChange(raw []byte) bool {
	var l wireLook
	if err := json.Unmarshal(raw, &l); err != nil {
		return true // let the full decoding report it
	}
	texts := []string{l.Description}
	add := func(t wireText) {
		texts = append(texts, t.Text, t.Title, t.Description)
		if t.Resource != nil {
			texts = append(texts, t.Resource.Text)
		}
	}
	for _, c := range l.Content {
		add(c)
	}
	for _, m := range l.Messages {
		add(m.Content)
	}
	for _, c := range l.Contents {
		texts = append(texts, c.Text)
	}
	texts = stringsIn(l.StructuredContent, texts)
	texts = stringsIn(l.InputRequests, texts)
	for _, t := range texts {
		if _, n := detect.Normalize(t); n != nil {
			return true
		}
		if _, r := sc.red.Redact(t); r != nil {
			return true
		}
	}
	return false
}

// stringsIn appends every string in a decoded JSON value to out.
func stringsIn(v any, out []string) []string {
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case map[string]any:
		for _, e := range x {
			out = stringsIn(e, out)
		}
	case []any:
		for _, e := range x {
			out = stringsIn(e, out)
		}
	}
	return out
}

// wire decodes a hot-path result and scans it; nil when nothing changed.
func (sc *scanner) wire(method string, w *pipeline.Wire) (mcp.Result, error) {
	if !sc.wouldChange(w.Result) {
		return nil, nil
	}
	switch method {
	case pipeline.MethodCallTool:
		var r mcp.CallToolResult
		if err := w.Decode(&r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.tool(&r); x != nil {
			return x, nil
		}
	case pipeline.MethodGetPrompt:
		var r mcp.GetPromptResult
		if err := w.Decode(&r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.prompt(&r); x != nil {
			return x, nil
		}
	case pipeline.MethodReadResource:
		var r mcp.ReadResourceResult
		if err := w.Decode(&r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.read(&r); x != nil {
			return x, nil
		}
	}
	return nil, nil
}

// text scans one string.
func (sc *scanner) text(s string) (string, bool) {
	out, n := detect.Normalize(s)
	out, r := sc.red.Redact(out)
	if n == nil && r == nil {
		return s, false
	}
	sc.counts.Merge(n)
	sc.counts.Merge(r)
	return out, out != s
}

// tool returns a scanned copy of r, or nil when nothing changed.
func (sc *scanner) tool(r *mcp.CallToolResult) *mcp.CallToolResult {
	var out *mcp.CallToolResult
	own := func() {
		if out == nil {
			cp := *r
			cp.Content = slices.Clone(r.Content)
			out = &cp
		}
	}
	for i, ct := range r.Content {
		if x := sc.content(ct); x != nil {
			own()
			out.Content[i] = x
		}
	}
	if r.StructuredContent != nil {
		v := r.StructuredContent
		if raw, ok := v.(json.RawMessage); ok {
			var d any
			if json.Unmarshal(raw, &d) == nil {
				v = d
			}
		}
		if x, changed := sc.value(v); changed {
			own()
			out.StructuredContent = x
		}
	}
	if x, changed := sc.inputs(r.InputRequests); changed {
		own()
		out.InputRequests = x
	}
	return out
}

// prompt returns a scanned copy of r, or nil when nothing changed.
func (sc *scanner) prompt(r *mcp.GetPromptResult) *mcp.GetPromptResult {
	var out *mcp.GetPromptResult
	own := func() {
		if out == nil {
			cp := *r
			cp.Messages = slices.Clone(r.Messages)
			out = &cp
		}
	}
	if d, changed := sc.text(r.Description); changed {
		own()
		out.Description = d
	}
	for i, m := range r.Messages {
		if m == nil {
			continue
		}
		if x := sc.content(m.Content); x != nil {
			own()
			cp := *m
			cp.Content = x
			out.Messages[i] = &cp
		}
	}
	if x, changed := sc.inputs(r.InputRequests); changed {
		own()
		out.InputRequests = x
	}
	return out
}

// read returns a scanned copy of a resources/read result (its contents'
// text; blobs are left alone), or nil when nothing changed.
func (sc *scanner) read(r *mcp.ReadResourceResult) *mcp.ReadResourceResult {
	var out *mcp.ReadResourceResult
	for i, rc := range r.Contents {
		if rc == nil {
			continue
		}
		if t, changed := sc.text(rc.Text); changed {
			if out == nil {
				cp := *r
				cp.Contents = slices.Clone(r.Contents)
				out = &cp
			}
			c := *rc
			c.Text = t
			out.Contents[i] = &c
		}
	}
	if x, changed := sc.inputs(r.InputRequests); changed {
		if out == nil {
			cp := *r
			out = &cp
		}
		out.InputRequests = x
	}
	return out
}

// Question scans what an upstream asks the client's model or user in a
// server-to-client request: a sampling/createMessage's system prompt and
// messages (text, embedded resources, resource links), or an
// elicitation/create's message and the texts of its requested schema. It
// returns params unchanged and nil counts when nothing changes, else a
// scanned copy (params is never changed in place) and what was removed.
// With p.Redact false it does nothing.
func (s *Stage) Question(p Policy, params any) (any, detect.Counts) {
	if !p.Redact || params == nil {
		return params, nil
	}
	sc := scanner{red: s.secrets}
	if p.PersonalData {
		sc.red = s.private
	}
	if out, changed := sc.question(params); changed {
		return out, sc.counts
	}
	return params, nil
}

// question returns a scanned copy of a server-to-client request's params
// (see [Stage.Question]) and true, or params and false when nothing
// changed.
func (sc *scanner) question(params any) (any, bool) {
	switch q := params.(type) {
	case *mcp.CreateMessageWithToolsParams:
		if q == nil {
			return params, false
		}
		var out *mcp.CreateMessageWithToolsParams
		own := func() {
			if out == nil {
				cp := *q
				cp.Messages = slices.Clone(q.Messages)
				out = &cp
			}
		}
		if t, changed := sc.text(q.SystemPrompt); changed {
			own()
			out.SystemPrompt = t
		}
		for i, m := range q.Messages {
			if m == nil {
				continue
			}
			var content []mcp.Content
			for j, ct := range m.Content {
				if x := sc.content(ct); x != nil {
					if content == nil {
						content = slices.Clone(m.Content)
					}
					content[j] = x
				}
			}
			if content != nil {
				own()
				cp := *m
				cp.Content = content
				out.Messages[i] = &cp
			}
		}
		if out != nil {
			return out, true
		}
	case *mcp.ElicitParams:
		if q == nil {
			return params, false
		}
		var out *mcp.ElicitParams
		if t, changed := sc.text(q.Message); changed {
			cp := *q
			cp.Message = t
			out = &cp
		}
		if q.RequestedSchema != nil {
			v := q.RequestedSchema
			if raw, ok := v.(json.RawMessage); ok {
				var d any
				if json.Unmarshal(raw, &d) == nil {
					v = d
				}
			}
			if x, changed := sc.value(v); changed {
				if out == nil {
					cp := *q
					out = &cp
				}
				out.RequestedSchema = x
			}
		}
		if out != nil {
			return out, true
		}
	}
	return params, false
}

// inputs returns a scanned copy of a result's input requests (the
// questions of an input-required result) and true, or m and false.
func (sc *scanner) inputs(m mcp.InputRequestMap) (mcp.InputRequestMap, bool) {
	var out mcp.InputRequestMap
	for k, q := range m {
		x, changed := sc.question(q)
		if !changed {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = x.(mcp.InputRequest)
	}
	return out, out != nil
}

// content returns a scanned copy of ct, or nil when nothing changed.
func (sc *scanner) content(ct mcp.Content) mcp.Content {
	switch x := ct.(type) {
	case *mcp.TextContent:
		if x == nil {
			return nil
		}
		if t, changed := sc.text(x.Text); changed {
			cp := *x
			cp.Text = t
			return &cp
		}
	case *mcp.EmbeddedResource:
		if x == nil || x.Resource == nil {
			return nil
		}
		if t, changed := sc.text(x.Resource.Text); changed {
			res := *x.Resource
			res.Text = t
			cp := *x
			cp.Resource = &res
			return &cp
		}
	case *mcp.ResourceLink:
		if x == nil {
			return nil
		}
		t, c1 := sc.text(x.Title)
		d, c2 := sc.text(x.Description)
		if c1 || c2 {
			cp := *x
			cp.Title, cp.Description = t, d
			return &cp
		}
	}
	return nil
}

// value scans every string in a decoded JSON value, copying the maps and
// slices on the way to a change.
func (sc *scanner) value(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return sc.text(x)
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			if n, changed := sc.value(e); changed {
				if out == nil {
					out = maps.Clone(x)
				}
				out[k] = n
			}
		}
		if out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, e := range x {
			if n, changed := sc.value(e); changed {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = n
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
