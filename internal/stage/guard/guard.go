// Package guard is the pipeline stage that scans what a model will read in
// tools/call, prompts/get and resources/read results: it removes hidden
// Unicode and terminal escape sequences from their text and redacts
// secrets (and, when the upstream's settings ask, personal data), using
// the detectors of internal/guard ([guard] results; docs/guardrails.md,
// "Scanning"). [Stage.Question] does the same to the sampling and
// elicitation requests an upstream sends, for the gateway to call where it
// relays them.
//
// It sees the call and what the stages below it answered. Text content,
// the text of embedded resources, resource links' titles and
// descriptions, every string of structured content, a prompt's
// description and messages, a resource's text contents and the questions
// of an input-required result are scanned; images, audio, blobs, _meta
// and object keys are not. When nothing changes it returns the result it
// was given, so a hot-path result's bytes go to the client untouched;
// when something does, it returns a changed copy (never the upstream's
// value changed in place), which the client gets re-encoded.
//
// On the hot path the result is bytes (pipeline.Wire): the stage reads
// the string values of its JSON in one pass, without decoding it, and
// decodes it only when the normaliser or the redactor would change that
// text.
package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

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
	// Judge has Options.Judge judge the questions of an input-required
	// result (the sampling and elicitation requests an upstream of the
	// 2026-07-28 era puts in its result).
	Judge bool
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
	// Judge, with Policy.Judge, judges one question of an input-required
	// result (method sampling/createMessage or elicitation/create): it
	// returns the question to relay (q itself when it is let through as
	// it is) or an error, which the call then returns.
	Judge func(ctx context.Context, c *pipeline.Call, method string, q any) (any, error)
}

// Stage is the guard stage.
type Stage struct {
	src              Source
	secrets, private *detect.Redactor
	o                Options
	// bufs holds the buffers mayChange reads a result's text into.
	bufs sync.Pool
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
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (out mcp.Result, err error) {
	if c.Method != pipeline.MethodCallTool && c.Method != pipeline.MethodGetPrompt && c.Method != pipeline.MethodReadResource {
		return next.Handle(ctx, c)
	}
	p := s.src.For(c)
	if !p.Redact {
		if p.Judge && s.o.Judge != nil {
			res, err := next.Handle(ctx, c)
			if err != nil || res == nil {
				return res, err
			}
			return s.judge(ctx, c, res)
		}
		return next.Handle(ctx, c)
	}
	res, err := next.Handle(ctx, c)
	if err != nil || res == nil {
		return res, err
	}
	if p.Judge && s.o.Judge != nil {
		defer func() {
			if err == nil && out != nil {
				out, err = s.judge(ctx, c, out)
			}
		}()
	}
	return s.redact(ctx, c, p, res)
}

// redact is the stage's scan of a result under Policy.Redact.
func (s *Stage) redact(ctx context.Context, c *pipeline.Call, p Policy, res mcp.Result) (mcp.Result, error) {
	var err error
	sc := scanner{red: s.secrets}
	if p.PersonalData {
		sc.red = s.private
	}
	var out mcp.Result
	if w := c.Wire; w != nil && w.Result != nil && res == w.Summary {
		if !sc.mayChange(w.Result, &s.bufs) {
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

// judge has Options.Judge judge the questions of res, if it is an
// input-required result: a result relayed as bytes is decoded only when
// they hold "inputRequests".
func (s *Stage) judge(ctx context.Context, c *pipeline.Call, res mcp.Result) (mcp.Result, error) {
	if w := c.Wire; w != nil && w.Result != nil && res == w.Summary {
		if !bytes.Contains(w.Result, []byte(`"inputRequests"`)) {
			return res, nil
		}
		var err error
		switch c.Method {
		case pipeline.MethodCallTool:
			var r mcp.CallToolResult
			err, res = w.Decode(&r), &r
		case pipeline.MethodGetPrompt:
			var r mcp.GetPromptResult
			err, res = w.Decode(&r), &r
		case pipeline.MethodReadResource:
			var r mcp.ReadResourceResult
			err, res = w.Decode(&r), &r
		}
		if err != nil {
			return nil, &jsonrpc.Error{Code: mcpwire.CodeInternalError, Message: "guard: decoding the result: " + err.Error()}
		}
		judged, err := s.judged(ctx, c, res)
		if err != nil || judged != nil {
			return judged, err
		}
		return w.Summary, nil // unchanged: relayed as the upstream's bytes
	}
	judged, err := s.judged(ctx, c, res)
	if err != nil || judged != nil {
		return judged, err
	}
	return res, nil
}

// judged returns a copy of res with its judged questions, nil when none
// changed, or the error a question got.
func (s *Stage) judged(ctx context.Context, c *pipeline.Call, res mcp.Result) (mcp.Result, error) {
	var m mcp.InputRequestMap
	switch r := res.(type) {
	case *mcp.CallToolResult:
		m = r.InputRequests
	case *mcp.GetPromptResult:
		m = r.InputRequests
	case *mcp.ReadResourceResult:
		m = r.InputRequests
	}
	var out mcp.InputRequestMap
	for k, q := range m {
		method := ""
		switch q.(type) {
		case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
			method = "sampling/createMessage"
		case *mcp.ElicitParams:
			method = "elicitation/create"
		default:
			continue
		}
		x, err := s.o.Judge(ctx, c, method, q)
		if err != nil {
			return nil, err
		}
		if x == any(q) {
			continue
		}
		xq, ok := x.(mcp.InputRequest)
		if !ok {
			continue
		}
		if out == nil {
			out = maps.Clone(m)
		}
		out[k] = xq
	}
	if out == nil {
		return nil, nil
	}
	switch r := res.(type) {
	case *mcp.CallToolResult:
		cp := *r
		cp.InputRequests = out
		return &cp, nil
	case *mcp.GetPromptResult:
		cp := *r
		cp.InputRequests = out
		return &cp, nil
	case *mcp.ReadResourceResult:
		cp := *r
		cp.InputRequests = out
		return &cp, nil
	}
	return nil, nil
}

// scanner scans one result, adding up what it removed.
type scanner struct {
	red    *detect.Redactor
	counts detect.Counts
}

// mayChange reports whether a result's JSON bytes may hold anything the
// scan changes. It reads every string value of raw (not object keys)
// unescaped into one text, in one pass without decoding the result, and
// asks the normaliser and the redactor about that text: false means that
// no string of the result has anything to remove or redact. (Strings the
// scan leaves alone, such as a URI or _meta, are read too: a secret in
// one of those makes the result decoded and scanned, and relayed
// unchanged.)
func (sc *scanner) mayChange(raw []byte, pool *sync.Pool) bool {
	bp, _ := pool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	text, ok := jsonStrings(raw, (*bp)[:0])
	// The text is looked at, not kept: a string over the buffer saves
	// copying it (the buffer is not written again before it goes back
	// to the pool).
	t := unsafe.String(unsafe.SliceData(text), len(text))
	may := !ok || sc.red.WouldChange(t)
	if cap(text) <= 1<<20 {
		*bp = text
		pool.Put(bp)
	}
	return may
}

// jsonStrings appends to buf the value of every string in the JSON raw
// that is not an object key, unescaped, each followed by a line feed. It
// is false when raw cannot be read that way (an unterminated string, a
// bad escape): the caller then decodes it. An escaped lone surrogate
// becomes U+FFFD, as encoding/json decodes it.
func jsonStrings(raw []byte, buf []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			break
		}
		start, j := len(buf), i+q+1
		for {
			e := bytes.IndexByte(raw[j:], '"')
			if e < 0 {
				return buf, false
			}
			if b := bytes.IndexByte(raw[j:j+e], '\\'); b >= 0 {
				e = b
			}
			buf = append(buf, raw[j:j+e]...)
			j += e
			if raw[j] == '"' {
				break
			}
			// An escape.
			if j+1 >= len(raw) {
				return buf, false
			}
			switch c := raw[j+1]; c {
			case '"', '\\', '/':
				buf = append(buf, c)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, n := unicodeEscape(raw[j:])
				if n == 0 {
					return buf, false
				}
				buf = utf8.AppendRune(buf, r)
				j += n
				continue
			default:
				return buf, false
			}
			j += 2
		}
		// j is at the closing quote: a key if a colon follows.
		k := j + 1
		for k < len(raw) && (raw[k] == ' ' || raw[k] == '\t' || raw[k] == '\n' || raw[k] == '\r') {
			k++
		}
		if k < len(raw) && raw[k] == ':' {
			buf = buf[:start]
		} else {
			buf = append(buf, '\n')
		}
		i = j + 1
	}
	return buf, true
}

// unicodeEscape decodes the \uXXXX escape (with its low surrogate, for a
// high one) at the start of b: the character and the bytes read, 0 if
// the escape is malformed.
func unicodeEscape(b []byte) (rune, int) {
	r := hex4(b)
	if r < 0 {
		return 0, 0
	}
	if utf16.IsSurrogate(r) {
		if r2 := hex4(b[6:]); r < 0xDC00 && r2 >= 0 {
			if c := utf16.DecodeRune(r, r2); c != utf8.RuneError {
				return c, 12
			}
		}
		return utf8.RuneError, 6
	}
	return r, 6
}

// hex4 is the value of the \uXXXX at the start of b, or -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}

// wire decodes a hot-path result and scans it; nil when nothing changed.
func (sc *scanner) wire(method string, w *pipeline.Wire) (mcp.Result, error) {
	switch method {
	case pipeline.MethodCallTool:
		var r mcp.CallToolResult
		if err := decodeWire(w, &r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.tool(&r); x != nil {
			return x, nil
		}
	case pipeline.MethodGetPrompt:
		var r mcp.GetPromptResult
		if err := decodeWire(w, &r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.prompt(&r); x != nil {
			return x, nil
		}
	case pipeline.MethodReadResource:
		var r mcp.ReadResourceResult
		if err := decodeWire(w, &r); err != nil {
			return nil, fmt.Errorf("decoding the result: %w", err)
		}
		if x := sc.read(&r); x != nil {
			return x, nil
		}
	}
	return nil, nil
}

// decodeWire decodes a result relayed as bytes into dst. A result of the
// SDK's types decodes itself (json.Unmarshaler): it is handed the bytes
// directly, since encoding/json would first validate them and then walk
// them again to find where the value ends, which cost as much as the
// decoding (BenchmarkWire). The bytes are one JSON value already checked
// (rawwire checks every message an upstream sends with jsonguard.Check
// before the result is taken from it); anything else goes through
// [pipeline.Wire.Decode].
func decodeWire(w *pipeline.Wire, dst any) error {
	if u, ok := dst.(json.Unmarshaler); ok && len(w.Result) > 0 {
		return u.UnmarshalJSON(w.Result)
	}
	return w.Decode(dst)
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
