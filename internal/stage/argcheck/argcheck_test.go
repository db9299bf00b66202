package argcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fixed answers every call with one schema.
type fixed struct {
	schema []byte
	check  bool
	asked  int
}

func (f *fixed) InputSchema(*pipeline.Call) ([]byte, bool) {
	f.asked++
	return f.schema, f.check
}

// reached is a next that records that the call got through.
type reached struct{ n int }

func (r *reached) Handle(context.Context, *pipeline.Call) (mcp.Result, error) {
	r.n++
	return &mcp.CallToolResult{}, nil
}

func call(args string) *pipeline.Call {
	c := &pipeline.Call{Method: pipeline.MethodCallTool, Name: "up__t", Upstream: "up", Item: "t"}
	if args != "" {
		c.Arguments = json.RawMessage(args)
	}
	return c
}

// counted is a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func newMetrics() Metrics {
	vec := func(name string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name}, []string{"upstream"})
	}
	return Metrics{Refused: vec("refused"), Unchecked: vec("unchecked"), SchemaErrors: vec("schema_errors")}
}

const countSchema = `{"type":"object","properties":{"count":{"type":"integer"},"name":{"type":"string","minLength":1}},"required":["name"],"additionalProperties":false}`

// TestArguments: what passes, what is refused and how the refusal reads.
func TestArguments(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		// want is the refusal's message after "…inputSchema: ", "" when the
		// call goes through.
		want string
		// violations are the refusal's data.
		violations []Violation
	}{
		{name: "valid", args: `{"name":"x","count":3}`},
		{name: "valid without the optional", args: `{"name":"x"}`},
		{name: "big integer", args: `{"name":"x","count":123456789012345678901234567890}`},
		{name: "wrong type", args: `{"name":"x","count":"3"}`,
			want:       "at /count: got string, want integer",
			violations: []Violation{{"/count", "got string, want integer"}}},
		{name: "fraction", args: `{"name":"x","count":1.5}`, want: "at /count: got number, want integer"},
		{name: "absent arguments", args: "", want: "at (root): missing property 'name'"},
		{name: "null arguments", args: "null", want: "at (root): missing property 'name'"},
		{name: "empty object", args: "{}", want: "at (root): missing property 'name'"},
		{name: "not an object", args: `[1]`, want: "at (root): got array, want object"},
		{name: "long key", args: `{"name":"x","` + strings.Repeat("k", 300) + `":1}`,
			want: "at (root): additional properties '" + strings.Repeat("k", 300)[:200-len("additional properties '")] + "…"},
		{name: "several", args: `{"name":"","count":"x","extra":1,"more":2}`,
			want: "at (root): additional properties 'extra', 'more' not allowed; at /count: got string, want integer; at /name: minLength: got 0, want 1",
			violations: []Violation{
				{"", "additional properties 'extra', 'more' not allowed"},
				{"/count", "got string, want integer"},
				{"/name", "minLength: got 0, want 1"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			s := New(&fixed{schema: []byte(countSchema), check: true}, &Options{Metrics: m})
			c := call(tc.args)
			next := &reached{}
			_, err := s.Handle(context.Background(), c, next)
			if tc.want == "" {
				if err != nil || next.n != 1 || c.Refused != "" {
					t.Fatalf("err %v, next ran %d times, Refused %q; want it through", err, next.n, c.Refused)
				}
				return
			}
			var werr *jsonrpc.Error
			if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams {
				t.Fatalf("err = %#v, want a -32602", err)
			}
			if want := "arguments do not match the tool's inputSchema: " + tc.want; werr.Message != want {
				t.Errorf("message\n got %q\nwant %q", werr.Message, want)
			}
			if next.n != 0 || c.Refused != "argcheck" {
				t.Errorf("refused call: next ran %d times, Refused %q", next.n, c.Refused)
			}
			if tc.violations != nil {
				var data struct{ Violations []Violation }
				if err := json.Unmarshal(werr.Data, &data); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.violations, data.Violations); d != "" {
					t.Errorf("violations mismatch (-want +got):\n%s", d)
				}
			}
			if got := counted(t, m.Refused.WithLabelValues("up")); got != 1 {
				t.Errorf("refused counted %v times", got)
			}
		})
	}
}

// Arguments that are not JSON (not reachable through the HTTP edge, which
// validates every body) are refused, not passed on.
func TestArgumentsNotJSON(t *testing.T) {
	s := New(&fixed{schema: []byte(countSchema), check: true}, nil)
	c := call(`{"name":`)
	_, err := s.Handle(context.Background(), c, &reached{})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || !strings.HasPrefix(werr.Message, "arguments are not valid JSON") || c.Refused != "argcheck" {
		t.Fatalf("err = %v, Refused %q", err, c.Refused)
	}
}

// A schema without required properties takes absent arguments.
func TestAbsentArgumentsWithoutRequired(t *testing.T) {
	s := New(&fixed{schema: []byte(`{"type":"object","properties":{"a":{"type":"string"}}}`), check: true}, nil)
	for _, args := range []string{"", "null", " null ", "{}"} {
		next := &reached{}
		if _, err := s.Handle(context.Background(), call(args), next); err != nil || next.n != 1 {
			t.Errorf("arguments %q: %v (next ran %d times)", args, err, next.n)
		}
	}
}

// The message names at most three violations, and says how many more.
func TestManyViolations(t *testing.T) {
	s := New(&fixed{schema: []byte(`{"type":"object","additionalProperties":{"type":"integer"}}`), check: true}, nil)
	_, err := s.Handle(context.Background(), call(`{"a":"x","b":"x","c":"x","d":"x","e":"x"}`), &reached{})
	want := "arguments do not match the tool's inputSchema: at /a: got string, want integer; at /b: got string, want integer; at /c: got string, want integer; and 2 more"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// Paths are JSON pointers: "/" and "~" in keys are escaped.
func TestPointerEscaping(t *testing.T) {
	s := New(&fixed{schema: []byte(`{"type":"object","additionalProperties":{"type":"object","additionalProperties":{"type":"integer"}}}`), check: true}, nil)
	_, err := s.Handle(context.Background(), call(`{"a/b":{"c~d":"x"}}`), &reached{})
	if err == nil || !strings.Contains(err.Error(), "at /a~1b/c~0d: got string, want integer") {
		t.Fatalf("err = %v", err)
	}
}

// MCP's default dialect is 2020-12; $schema picks another draft.
func TestDraftChoice(t *testing.T) {
	for _, tc := range []struct {
		name, schema, args string
		refused            bool
	}{
		// dependentRequired is 2020-12 (and 2019-09), dependencies draft-07.
		{"2020-12 by default", `{"type":"object","dependentRequired":{"a":["b"]}}`, `{"a":1}`, true},
		{"draft-07 by $schema", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","dependencies":{"a":["b"]}}`, `{"a":1}`, true},
		{"draft-07 ignores dependentRequired", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","dependentRequired":{"a":["b"]}}`, `{"a":1}`, false},
		{"2020-12 prefixItems", `{"type":"object","properties":{"p":{"type":"array","prefixItems":[{"type":"string"}]}}}`, `{"p":[1]}`, true},
		{"internal $ref and $defs", `{"type":"object","properties":{"n":{"$ref":"#/$defs/pos"}},"$defs":{"pos":{"type":"integer","minimum":1}}}`, `{"n":0}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(&fixed{schema: []byte(tc.schema), check: true}, nil)
			next := &reached{}
			_, err := s.Handle(context.Background(), call(tc.args), next)
			if got := err != nil; got != tc.refused {
				t.Fatalf("refused = %v (%v), want %v", got, err, tc.refused)
			}
		})
	}
}

// A schema that does not compile lets its calls through, is logged once
// and counted; nothing outside the schema is ever loaded.
func TestSchemaThatDoesNotCompile(t *testing.T) {
	// A file the schema points at: were it loaded, {} would be refused.
	file := filepath.Join(t.TempDir(), "int.json")
	if err := os.WriteFile(file, []byte(`{"type":"integer"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, schema string }{
		{"not a schema", `{"type":12}`},
		{"not JSON", `{"type":`},
		{"file $ref", `{"$ref":"file://` + filepath.ToSlash(file) + `"}`},
		{"relative $ref", `{"$ref":"int.json"}`},
		{"remote $ref", `{"type":"object","properties":{"x":{"$ref":"https://schemas.example/x.json"}}}`},
		{"unknown $schema", `{"$schema":"https://schemas.example/mine","type":"object","required":["x"]}`},
		{"reference cycle", `{"type":"object","properties":{"a":{"$ref":"#/properties/a"}}}`},
		{"pattern Go cannot compile", `{"type":"object","properties":{"x":{"type":"string","pattern":"(?=a)"}},"required":["x"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			m := newMetrics()
			s := New(&fixed{schema: []byte(tc.schema), check: true}, &Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			for range 3 {
				c := call(`{"a":1}`)
				next := &reached{}
				if _, err := s.Handle(context.Background(), c, next); err != nil || next.n != 1 || c.Refused != "" {
					t.Fatalf("err %v, next ran %d times, Refused %q; want it through unchecked", err, next.n, c.Refused)
				}
			}
			if n := strings.Count(logged.String(), "inputSchema unusable"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logged.String())
			}
			if !strings.Contains(logged.String(), "upstream=up") || !strings.Contains(logged.String(), "tool=t") {
				t.Errorf("the log does not name the upstream and tool: %s", logged.String())
			}
			if got := counted(t, m.Unchecked.WithLabelValues("up")); got != 3 {
				t.Errorf("unchecked counted %v, want 3", got)
			}
			if got := counted(t, m.SchemaErrors.WithLabelValues("up")); got != 1 {
				t.Errorf("schema errors counted %v, want 1", got)
			}
		})
	}
}

// check_arguments = false, no schema, and other methods: not checked.
func TestNotChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  *fixed
		c    *pipeline.Call
	}{
		{"disabled", &fixed{schema: []byte(countSchema), check: false}, call(`{"count":"x"}`)},
		{"no schema", &fixed{check: true}, call(`{"count":"x"}`)},
		{"prompts/get", &fixed{schema: []byte(countSchema), check: true}, &pipeline.Call{Method: pipeline.MethodGetPrompt, Name: "p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics()
			s := New(tc.src, &Options{Metrics: m})
			next := &reached{}
			if _, err := s.Handle(context.Background(), tc.c, next); err != nil || next.n != 1 || tc.c.Refused != "" {
				t.Fatalf("err %v, next ran %d times, Refused %q", err, next.n, tc.c.Refused)
			}
			if s.cached() != 0 {
				t.Error("a schema was compiled")
			}
			if tc.c.Method != pipeline.MethodCallTool && tc.src.asked != 0 {
				t.Error("asked for a schema for another method")
			}
		})
	}
}

// Each schema is compiled once and found again by its bytes; a changed
// schema (a catalog refresh) is compiled anew.
func TestCacheByBytes(t *testing.T) {
	src := &fixed{schema: []byte(countSchema), check: true}
	s := New(src, nil)
	c := call(`{"name":"x"}`)
	first := s.compiled(c, src.schema)
	if again := s.compiled(c, []byte(countSchema)); again != first {
		t.Fatal("the same bytes compiled twice")
	}
	for range 5 {
		if _, err := s.Handle(context.Background(), call(`{"name":"x"}`), &reached{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.cached(); n != 1 {
		t.Fatalf("%d schemas cached, want 1", n)
	}
	// The upstream changes the schema: name must now be an integer.
	src.schema = []byte(strings.Replace(countSchema, `"name":{"type":"string","minLength":1}`, `"name":{"type":"integer"}`, 1))
	if _, err := s.Handle(context.Background(), call(`{"name":"x"}`), &reached{}); err == nil || !strings.Contains(err.Error(), "at /name: got string, want integer") {
		t.Fatalf("after the schema changed: %v", err)
	}
	if n := s.cached(); n != 2 {
		t.Fatalf("%d schemas cached, want 2", n)
	}
}

// The cache keeps at most MaxSchemas schemas and MaxSchemaBytes bytes,
// dropping the least recently used.
func TestCacheBounds(t *testing.T) {
	schema := func(i int) []byte { return fmt.Appendf(nil, `{"type":"object","maxProperties":%d}`, i) }
	s := New(nil, &Options{MaxSchemas: 3})
	c := call("{}")
	a := s.compiled(c, schema(1))
	s.compiled(c, schema(2))
	s.compiled(c, schema(3))
	s.compiled(c, schema(1)) // 1 is used again: 2 is now the oldest
	s.compiled(c, schema(4))
	if n := s.cached(); n != 3 {
		t.Fatalf("%d cached, want 3", n)
	}
	if s.cache.get(schema(2)) != nil {
		t.Error("the least recently used schema was kept")
	}
	if s.cache.get(schema(1)) != a || s.cache.get(schema(3)) == nil || s.cache.get(schema(4)) == nil {
		t.Error("a recently used schema was dropped")
	}

	size := len(schema(10))
	s = New(nil, &Options{MaxSchemaBytes: 2 * size})
	for i := 10; i < 15; i++ {
		s.compiled(c, schema(i))
	}
	if n := s.cached(); n != 2 {
		t.Errorf("%d cached within %d bytes, want 2", n, 2*size)
	}
	if s.cache.bytes > 2*size {
		t.Errorf("%d bytes cached, bound %d", s.cache.bytes, 2*size)
	}
	big := []byte(`{"type":"object","description":"` + strings.Repeat("x", 4*size) + `"}`)
	if e := s.compiled(c, big); s.cache.get(big) != e || s.cached() != 1 {
		t.Errorf("a schema larger than the bound is not kept alone (%d cached)", s.cached())
	}
}

// Concurrent calls with changing schemas (run with -race).
func TestConcurrent(t *testing.T) {
	s := New(nil, &Options{MaxSchemas: 4})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				src := &fixed{schema: fmt.Appendf(nil, `{"type":"object","properties":{"n":{"type":"integer","maximum":%d}}}`, (w+i)%7), check: true}
				st := &Stage{src: src, log: s.log, words: s.words, cache: s.cache}
				_, err := st.Handle(context.Background(), call(`{"n":3}`), &reached{})
				if refused := err != nil; refused != ((w+i)%7 < 3) {
					t.Errorf("maximum %d, n 3: refused %v (%v)", (w+i)%7, refused, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := s.cached(); n > 4 {
		t.Errorf("%d cached, bound 4", n)
	}
}

// FuzzHandle: whatever schema an upstream lists and whatever arguments a
// client sends, the stage neither panics nor does anything but pass the
// call on or refuse it with -32602.
func FuzzHandle(f *testing.F) {
	f.Add([]byte(countSchema), []byte(`{"name":"x","count":"3"}`))
	f.Add([]byte(`{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"anyOf":[{"type":"string"},{"type":"array","items":{"$ref":"#/$defs/x"}}]}}}`), []byte(`{"a":[["x",1]]}`))
	f.Add([]byte(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","properties":{"n":{"minimum":1,"exclusiveMinimum":true}}}`), []byte(`{"n":1}`))
	f.Add([]byte(`{"type":"object","properties":{"s":{"pattern":"^a+$","format":"email"}},"unevaluatedProperties":false}`), []byte(`{"s":"b","t":null}`))
	f.Add([]byte(`true`), []byte(`null`))
	f.Add([]byte(`{"$ref":"#"}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, schema, args []byte) {
		s := New(&fixed{schema: schema, check: true}, nil)
		c := call("")
		c.Arguments = args
		next := &reached{}
		_, err := s.Handle(context.Background(), c, next)
		if err == nil {
			if next.n != 1 || c.Refused != "" {
				t.Fatalf("passed: next ran %d times, Refused %q", next.n, c.Refused)
			}
			return
		}
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams || next.n != 0 || c.Refused != "argcheck" {
			t.Fatalf("refused with %#v, next ran %d times, Refused %q", err, next.n, c.Refused)
		}
		if !strings.HasPrefix(werr.Message, "argument") {
			t.Fatalf("message %q", werr.Message)
		}
	})
}

// BenchmarkHandle is the stage's cost per call with a compiled schema:
// a schema that only asks for an object, and a typical tool's arguments,
// valid and not.
func BenchmarkHandle(b *testing.B) {
	typical := `{"type":"object","properties":{"path":{"type":"string","minLength":1},"recursive":{"type":"boolean"},"depth":{"type":"integer","minimum":0,"maximum":32},"exclude":{"type":"array","items":{"type":"string"}}},"required":["path"],"additionalProperties":false}`
	for _, bc := range []struct{ name, schema, args string }{
		{"object", `{"type":"object"}`, `{"message":"hello"}`},
		{"typical", typical, `{"path":"/srv/data","recursive":true,"depth":3,"exclude":["*.tmp","*.log"]}`},
		{"refused", typical, `{"path":"","depth":"3","other":1}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := New(&fixed{schema: []byte(bc.schema), check: true}, nil)
			next := &reached{}
			b.ReportAllocs()
			for b.Loop() {
				c := call(bc.args)
				_, _ = s.Handle(context.Background(), c, next)
			}
		})
	}
}
