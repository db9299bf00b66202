// Package argcheck is the pipeline stage that checks a tools/call's
// arguments against the inputSchema of the tool the caller was shown,
// before the call can be queued, cached or sent: arguments that do not
// match are refused with JSON-RPC -32602 (invalid params), naming the
// JSON pointer of each failing value and why, and never reach the
// upstream.
//
// Schemas are JSON Schema 2020-12 unless they say otherwise with $schema
// (drafts 4, 6, 7 and 2019-09 are honoured; MCP's default dialect is
// 2020-12). They come from upstreams, which the gateway does not trust, so
// compiling one never reads a file or the network: a $ref or $schema that
// points outside the schema itself does not compile. A schema that does not
// compile must not block the tool: its calls go on unchecked (the upstream
// judges them), it is logged once, and each such call is counted. An
// upstream whose schemas are wrong can be left unchecked altogether
// (check_arguments = false, which [Schemas] reports).
//
// Each schema is compiled once and kept, keyed by its bytes, in a cache
// bounded by count and size: a catalog refresh that changes a tool's schema
// gets the new one compiled, and one that does not reuses the old.
//
// It sees the call's tool and arguments; it changes nothing but Refused.
package argcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpedge/mcpedge/internal/pipeline"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schemas finds what the stage checks a call against.
type Schemas interface {
	// InputSchema returns the raw JSON inputSchema of the tool c calls,
	// as listed to the caller (c.Item at c.Target's upstream), and
	// whether that upstream's arguments are to be checked. A nil schema
	// (no such tool, no listed definition) lets the call go on. The
	// bytes must not change once returned: the compiled schema is cached
	// under them. It is called on every tools/call, so it must be cheap.
	InputSchema(c *pipeline.Call) (schema []byte, check bool)
}

// Defaults of [Options].
const (
	DefaultMaxSchemas     = 1024
	DefaultMaxSchemaBytes = 16 << 20
)

// Options configure the stage; nil means the defaults.
type Options struct {
	// MaxSchemas bounds how many compiled schemas are kept (0:
	// DefaultMaxSchemas).
	MaxSchemas int
	// MaxSchemaBytes bounds the total size of the schemas kept, as JSON
	// (0: DefaultMaxSchemaBytes). A single larger schema is still kept,
	// alone.
	MaxSchemaBytes int
	// Logger gets one warning per schema that does not compile (nil: none).
	Logger *slog.Logger
	// Metrics count what the stage decides.
	Metrics Metrics
}

// Metrics count the stage's decisions; each vector has one label,
// "upstream" (the call's upstream), and nil vectors are not counted.
type Metrics struct {
	// Refused counts calls refused because their arguments do not match.
	Refused *prometheus.CounterVec
	// Unchecked counts calls let through unchecked because their tool's
	// schema does not compile.
	Unchecked *prometheus.CounterVec
	// SchemaErrors counts schemas that failed to compile (once per
	// schema while it is cached).
	SchemaErrors *prometheus.CounterVec
}

// Stage is the argcheck stage.
type Stage struct {
	src   Schemas
	log   *slog.Logger
	m     Metrics
	cache *cache
	// words says the validator's reasons in English.
	words *message.Printer
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the stage checking against the schemas src finds; o may be
// nil.
func New(src Schemas, o *Options) *Stage {
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.MaxSchemas <= 0 {
		opts.MaxSchemas = DefaultMaxSchemas
	}
	if opts.MaxSchemaBytes <= 0 {
		opts.MaxSchemaBytes = DefaultMaxSchemaBytes
	}
	return &Stage{src: src, log: opts.Logger, m: opts.Metrics, words: message.NewPrinter(language.English),
		cache: &cache{entries: map[string]*entry{}, maxN: opts.MaxSchemas, maxBytes: opts.MaxSchemaBytes}}
}

// Name implements [pipeline.Stage].
func (*Stage) Name() string { return "argcheck" }

// Handle implements [pipeline.Stage].
func (s *Stage) Handle(ctx context.Context, c *pipeline.Call, next pipeline.Handler) (mcp.Result, error) {
	if c.Method != pipeline.MethodCallTool {
		return next.Handle(ctx, c)
	}
	raw, check := s.src.InputSchema(c)
	if !check || raw == nil {
		return next.Handle(ctx, c)
	}
	e := s.compiled(c, raw)
	if e.err != nil {
		count(s.m.Unchecked, c.Upstream)
		return next.Handle(ctx, c)
	}
	refused, problem := s.check(e.schema, c.Arguments)
	if problem != nil {
		// The schema, not the caller, is at fault: as for one that does
		// not compile.
		count(s.m.Unchecked, c.Upstream)
		if e.reported.CompareAndSwap(false, true) {
			s.schemaError(c, problem)
		}
		return next.Handle(ctx, c)
	}
	if refused != nil {
		count(s.m.Refused, c.Upstream)
		c.Refused = s.Name()
		return nil, refused
	}
	return next.Handle(ctx, c)
}

// cached reports how many compiled schemas the stage keeps.
func (s *Stage) cached() int {
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	return len(s.cache.entries)
}

func count(v *prometheus.CounterVec, upstream string) {
	if v != nil {
		v.WithLabelValues(upstream).Inc()
	}
}

// compiled returns raw's cache entry, compiling it on first use. A schema
// that does not compile is logged and counted once, when it is compiled.
func (s *Stage) compiled(c *pipeline.Call, raw []byte) *entry {
	if e := s.cache.get(raw); e != nil {
		return e
	}
	sch, err := compile(raw)
	e, fresh := s.cache.put(raw, &entry{schema: sch, err: err})
	if fresh && err != nil {
		e.reported.Store(true)
		s.schemaError(c, err)
	}
	return e
}

// schemaError logs and counts a schema that cannot judge c's arguments.
func (s *Stage) schemaError(c *pipeline.Call, err error) {
	count(s.m.SchemaErrors, c.Upstream)
	if s.log != nil {
		s.log.Warn("tool inputSchema unusable: its calls go through unchecked",
			"upstream", c.Upstream, "tool", c.Item, "err", err)
	}
}

// schemaURL names the schema being compiled: relative references resolve
// against it to URLs of its own scheme, which the loader refuses like any
// other. (An opaque base, a urn:, would resolve them to the schema itself.)
const schemaURL = "mcpedge-input-schema:///inputSchema.json"

// compile compiles an upstream's schema: 2020-12 unless $schema says
// otherwise, never loading anything from outside it.
func compile(raw []byte) (sch *jsonschema.Schema, err error) {
	defer func() {
		// The schema is the upstream's: a validator bug it triggers must
		// not take the gateway down.
		if r := recover(); r != nil {
			sch, err = nil, fmt.Errorf("compiling the schema panicked: %v", r)
		}
	}()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("inputSchema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// noLoader refuses every URL: an upstream's schema may refer only to
// itself (and to the drafts' meta-schemas, which the library carries).
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("not loading %q: an inputSchema may only refer to itself", url)
}

// check checks args (nil or JSON null: no arguments, {}) against sch. It
// returns the -32602 the caller gets when they do not match, or a problem
// when the schema could not judge them (a reference cycle it only meets at
// validation, a validator panic).
func (s *Stage) check(sch *jsonschema.Schema, args json.RawMessage) (refused, problem error) {
	var inst any = map[string]any{}
	if a := bytes.TrimSpace(args); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		var err error
		if inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(a)); err != nil {
			return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "arguments are not valid JSON: " + err.Error()}, nil
		}
	}
	defer func() {
		if r := recover(); r != nil {
			refused, problem = nil, fmt.Errorf("validating against the schema panicked: %v", r)
		}
	}()
	err := sch.Validate(inst)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	if cycle := findCycle(ve); cycle != nil {
		return nil, errors.New(cycle.LocalizedString(s.words))
	}
	return refusal(violations(ve, s.words)), nil
}

// findCycle returns the reference cycle among ve's causes, nil if none.
func findCycle(ve *jsonschema.ValidationError) *kind.RefCycle {
	if k, ok := ve.ErrorKind.(*kind.RefCycle); ok {
		return k
	}
	for _, c := range ve.Causes {
		if k := findCycle(c); k != nil {
			return k
		}
	}
	return nil
}

// Limits of a refusal's message and data.
const (
	// maxInMessage violations are named in the message, maxInData in
	// its data.
	maxInMessage = 3
	maxInData    = 16
	// maxText clips one path or reason.
	maxText = 200
)

// Violation is one failing value: where (a JSON pointer into the
// arguments, "" for the arguments object itself) and why.
type Violation struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// refusal is the -32602 for vs: its message names the first violations
// (by path) with their reasons, its data lists them
// ({"violations": [Violation…]}).
func refusal(vs []Violation) error {
	var b strings.Builder
	b.WriteString("arguments do not match the tool's inputSchema: ")
	for i, v := range vs[:min(len(vs), maxInMessage)] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("at ")
		if v.Path == "" {
			b.WriteString("(root)")
		} else {
			b.WriteString(v.Path)
		}
		b.WriteString(": ")
		b.WriteString(v.Reason)
	}
	if n := len(vs) - maxInMessage; n > 0 {
		fmt.Fprintf(&b, "; and %d more", n)
	}
	data, _ := json.Marshal(map[string]any{"violations": vs[:min(len(vs), maxInData)]})
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: b.String(), Data: data}
}

// violations lists the failing values of ve — the leaves of its tree of
// causes — sorted by path and reason, without repeats, worded by p.
func violations(ve *jsonschema.ValidationError, p *message.Printer) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok {
			// The validator lists them in map order: the same call must
			// be refused in the same words every time.
			slices.Sort(ap.Properties)
		}
		out = append(out, Violation{Path: clip(pointer(e.InstanceLocation)), Reason: clip(e.ErrorKind.LocalizedString(p))})
	}
	walk(ve)
	slices.SortFunc(out, func(a, b Violation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	return slices.Compact(out)
}

// pointer is the JSON pointer (RFC 6901) of tokens.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	return strings.ToValidUTF8(s[:maxText], "") + "…"
}

// entry is one compiled schema, or why it did not compile.
type entry struct {
	schema *jsonschema.Schema
	err    error
	size   int
	// reported is set once the schema's problem was logged.
	reported atomic.Bool
	// used is the cache's clock when the entry was last used.
	used atomic.Uint64
}

// cache keeps compiled schemas by their bytes, evicting the least recently
// used beyond its bounds. A hit takes the read lock and, at most, one
// atomic store; the clock advances only when a schema is added, so "least
// recently used" is measured in additions — which is when it matters.
type cache struct {
	mu       sync.RWMutex
	entries  map[string]*entry
	bytes    int
	maxN     int
	maxBytes int
	clock    atomic.Uint64
}

func (c *cache) get(raw []byte) *entry {
	c.mu.RLock()
	e := c.entries[string(raw)]
	c.mu.RUnlock()
	if e != nil {
		if now := c.clock.Load(); e.used.Load() != now {
			e.used.Store(now)
		}
	}
	return e
}

// put adds e under raw unless another caller added it first; it returns
// the entry kept and whether it is e.
func (c *cache) put(raw []byte, e *entry) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[string(raw)]; old != nil {
		return old, false
	}
	e.size = len(raw)
	e.used.Store(c.clock.Add(1))
	c.entries[string(raw)] = e
	c.bytes += e.size
	for len(c.entries) > c.maxN || (c.bytes > c.maxBytes && len(c.entries) > 1) {
		var oldest string
		var at uint64
		first := true
		for k, x := range c.entries {
			if x == e {
				continue
			}
			if u := x.used.Load(); first || u < at {
				oldest, at, first = k, u, false
			}
		}
		if first {
			break
		}
		c.bytes -= c.entries[oldest].size
		delete(c.entries, oldest)
	}
	return e, true
}
