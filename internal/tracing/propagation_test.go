package tracing

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"go.opentelemetry.io/otel/trace"
)

const (
	clientTP  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	headerTP  = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	clientTID = "4bf92f3577b34da6a3ce929d0e0e4736"
)

func TestFromMeta(t *testing.T) {
	tests := []struct{ meta, tp, ts string }{
		{`{"traceparent":"` + clientTP + `","tracestate":"v=1"}`, clientTP, "v=1"},
		{`{"progressToken":3,"traceparent":"` + clientTP + `"}`, clientTP, ""},
		{`{"traceparent":7,"tracestate":null}`, "", ""},
		{`{"traceparent":"\u0030\u0030-x"}`, "00-x", ""},
		{`{"traceparent":"` + strings.Repeat("a", 200) + `"}`, "", ""},
		{`[]`, "", ""},
		{``, "", ""},
		{`{}`, "", ""},
	}
	for _, tc := range tests {
		tp, ts := FromMeta([]byte(tc.meta))
		if tp != tc.tp || ts != tc.ts {
			t.Errorf("FromMeta(%s) = %q, %q; want %q, %q", tc.meta, tp, ts, tc.tp, tc.ts)
		}
	}
}

func TestExtract(t *testing.T) {
	h := http.Header{}
	ctx := context.Background()
	if got := Extract(ctx, h, nil); got != ctx {
		t.Error("no trace context: ctx should come back as it is")
	}
	h.Set("traceparent", headerTP)
	h.Set("tracestate", "h=1")
	sc := trace.SpanContextFromContext(Extract(ctx, h, nil))
	if !sc.IsRemote() || Traceparent(sc) != headerTP || Tracestate(sc) != "h=1" {
		t.Errorf("from the header: %s %s", Traceparent(sc), Tracestate(sc))
	}
	// _meta wins over the header: it is the message's own.
	sc = trace.SpanContextFromContext(Extract(ctx, h, []byte(`{"traceparent":"`+clientTP+`"}`)))
	if sc.TraceID().String() != clientTID || Tracestate(sc) != "" {
		t.Errorf("from _meta: %s", Traceparent(sc))
	}
	// A bad traceparent in _meta falls back to the header; bad everywhere: none.
	sc = trace.SpanContextFromContext(Extract(ctx, h, []byte(`{"traceparent":"00-zz"}`)))
	if Traceparent(sc) != headerTP {
		t.Errorf("bad _meta: %s", Traceparent(sc))
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "garbage"} {
		h := http.Header{"Traceparent": {bad}}
		if sc := trace.SpanContextFromContext(Extract(ctx, h, nil)); sc.IsValid() {
			t.Errorf("%q accepted", bad)
		}
	}
	// Two traceparent headers: ignored.
	h = http.Header{"Traceparent": {headerTP, clientTP}}
	if sc := trace.SpanContextFromContext(Extract(ctx, h, nil)); sc.IsValid() {
		t.Error("two traceparent headers accepted")
	}
}

func TestInject(t *testing.T) {
	ctx := context.Background()
	h := http.Header{}
	InjectHeader(ctx, h)
	meta := map[string]any{"progressToken": "p"}
	if len(h) != 0 || len(InjectMeta(ctx, meta)) != 1 {
		t.Fatal("nothing to inject, yet something was")
	}
	sc := Parse(clientTP, "a=b")
	ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	InjectHeader(ctx, h)
	if h.Get("traceparent") != clientTP || h.Get("tracestate") != "a=b" {
		t.Errorf("headers: %v", h)
	}
	out := InjectMeta(ctx, meta)
	if out["traceparent"] != clientTP || out["tracestate"] != "a=b" || out["progressToken"] != "p" || len(meta) != 1 {
		t.Errorf("meta: %v (client's: %v)", out, meta)
	}
	// Already carried: the same map, no copy.
	again := InjectMeta(ctx, out)
	again["marker"] = true
	if out["marker"] != true {
		t.Errorf("a meta that already carries the context was copied: %v", again)
	}
	if nilMeta := InjectMeta(ctx, nil); nilMeta["traceparent"] != clientTP {
		t.Errorf("nil meta: %v", nilMeta)
	}
}

func TestSpliceMeta(t *testing.T) {
	sc := Parse(clientTP, "")
	tests := []struct{ meta, want string }{
		{``, `{"traceparent":"` + clientTP + `"}`},
		{`{}`, `{"traceparent":"` + clientTP + `"}`},
		{`{"progressToken":1}`, `{"progressToken":1,"traceparent":"` + clientTP + `"}`},
		{`{"traceparent":"` + headerTP + `","tracestate":"x=1","k":{"a":[1]}}`, `{"k":{"a":[1]},"traceparent":"` + clientTP + `"}`},
	}
	for _, tc := range tests {
		got, err := SpliceMeta(nil, []byte(tc.meta), sc, nil)
		if err != nil || string(got) != tc.want {
			t.Errorf("SpliceMeta(%s) = %s, %v; want %s", tc.meta, got, err, tc.want)
		}
		if err := jsonguard.Check(got, jsonguard.Limits{MaxDepth: 64}); err != nil {
			t.Errorf("SpliceMeta(%s) is not valid JSON: %v", tc.meta, err)
		}
	}
	got, _ := SpliceMeta(nil, []byte(`{"a":1}`), Parse(clientTP, "v=1,w=2"), nil)
	if string(got) != `{"a":1,"traceparent":"`+clientTP+`","tracestate":"v=1,w=2"}` {
		t.Errorf("with tracestate: %s", got)
	}
	if !MetaCarries(got, Parse(clientTP, "v=1,w=2")) || MetaCarries(got, Parse(headerTP, "")) {
		t.Error("MetaCarries")
	}
	// Not valid: only the edit runs.
	got, _ = SpliceMeta(nil, []byte(`{"a":1}`), trace.SpanContext{}, nil)
	if string(got) != `{"a":1}` {
		t.Errorf("invalid sc: %s", got)
	}
}

// FuzzMetaTrace feeds outside _meta objects (a client's request) to the
// parser and the splice: no panic, the splice's output is valid JSON that
// carries exactly the injected context, and the other members survive.
func FuzzMetaTrace(f *testing.F) {
	f.Add(`{"traceparent":"` + clientTP + `","tracestate":"a=b"}`)
	f.Add(`{"progressToken":"x","traceparent":1}`)
	f.Add(`{"traceparent":"\u0030\u0030-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`)
	f.Add(`{"a":{"traceparent":"x"},"traceparent":"00-1-2-3"}`)
	f.Add(`[1,2]`)
	f.Add(`{}`)
	sc := Parse(headerTP, "k=v")
	f.Fuzz(func(t *testing.T, meta string) {
		b := []byte(meta)
		if jsonguard.Check(b, jsonguard.Limits{MaxDepth: 64}) != nil {
			return // only validated messages reach these functions
		}
		tp, _ := FromMeta(b)
		_ = Parse(tp, "")
		if len(b) == 0 || b[0] != '{' {
			return
		}
		out, err := SpliceMeta(nil, b, sc, nil)
		if err != nil {
			t.Fatalf("SpliceMeta(%s): %v", meta, err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("SpliceMeta(%s) = %s: %v", meta, out, err)
		}
		if m["traceparent"] != headerTP || m["tracestate"] != "k=v" || !MetaCarries(out, sc) {
			t.Fatalf("SpliceMeta(%s) = %s", meta, out)
		}
		var in map[string]any
		if json.Unmarshal(b, &in) == nil {
			for k := range in {
				if _, ok := m[k]; !ok {
					t.Fatalf("member %q lost: %s", k, out)
				}
			}
		}
	})
}

// TestNoTraceContextNoAllocation: what every request pays when neither
// the client nor the gateway has a trace context (tracing off, the common
// case) allocates nothing. (The hot path's splice is not called then:
// gateway.traceEdit returns the params edit as it is.)
func TestNoTraceContextNoAllocation(t *testing.T) {
	ctx := context.Background()
	h := http.Header{"Content-Type": {"application/json"}}
	meta := map[string]any{"progressToken": 1}
	n := testing.AllocsPerRun(100, func() {
		_ = Extract(ctx, h, nil)
		InjectHeader(ctx, h)
		_ = InjectMeta(ctx, meta)
	})
	if n != 0 {
		t.Errorf("%v allocations per request without trace context", n)
	}
}
