package tracing

import (
	"context"
	"encoding/hex"
	"net/http"

	"github.com/mcpedge/mcpedge/internal/jsonguard"
	"github.com/mcpedge/mcpedge/internal/rawwire"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C Trace Context keys: HTTP header names (canonical form) and the
// keys of a request's params._meta that carry the same values (SEP-414,
// the OpenTelemetry semantic conventions for MCP).
const (
	HeaderTraceparent = "Traceparent"
	HeaderTracestate  = "Tracestate"
	MetaTraceparent   = "traceparent"
	MetaTracestate    = "tracestate"
)

// MaxTracestate bounds the tracestate the gateway reads and sends on (W3C
// allows 32 list members; a longer value is dropped, as the specification
// lets a vendor do).
const MaxTracestate = 512

// TraceparentLen is the length of a version-00 traceparent value.
const TraceparentLen = 55

// FromMeta returns the traceparent and tracestate values of a _meta object
// (its raw JSON, validated by jsonguard), "" for a key that is absent, not
// a string, or too long to be one. It does not check the values' format:
// [Extract] does.
func FromMeta(meta []byte) (traceparent, tracestate string) {
	if len(meta) == 0 || meta[0] != '{' {
		return "", ""
	}
	_ = jsonguard.Members(meta, func(m jsonguard.Member) bool {
		switch string(m.Key) {
		case MetaTraceparent:
			if len(m.Value) <= 2*TraceparentLen+2 {
				traceparent, _ = jsonguard.Unquote(m.Value)
			}
		case MetaTracestate:
			if len(m.Value) <= 2*MaxTracestate+2 {
				tracestate, _ = jsonguard.Unquote(m.Value)
			}
		}
		return true
	})
	return traceparent, tracestate
}

// carrier is a TextMapCarrier over the two values the gateway reads.
type carrier struct{ traceparent, tracestate string }

func (c *carrier) Get(key string) string {
	switch key {
	case MetaTraceparent:
		return c.traceparent
	case MetaTracestate:
		if len(c.tracestate) > MaxTracestate {
			return ""
		}
		return c.tracestate
	}
	return ""
}
func (c *carrier) Set(string, string) {}
func (c *carrier) Keys() []string     { return []string{MetaTraceparent, MetaTracestate} }

// Extract returns ctx carrying the client's trace context, as the parent
// of what the gateway does for the request: the traceparent (and
// tracestate) of meta, the request's params._meta, when it is valid, else
// those of the HTTP header h. ctx is returned as it is when neither is
// valid — the common case, which costs two map lookups.
func Extract(ctx context.Context, h http.Header, meta []byte) context.Context {
	if len(meta) > 0 {
		if tp, ts := FromMeta(meta); tp != "" {
			if sc := Parse(tp, ts); sc.IsValid() {
				return trace.ContextWithRemoteSpanContext(ctx, sc)
			}
		}
	}
	tp := h[HeaderTraceparent]
	if len(tp) != 1 {
		return ctx // none, or several: W3C says to ignore them
	}
	ts := ""
	if v := h[HeaderTracestate]; len(v) == 1 {
		ts = v[0]
	}
	if sc := Parse(tp[0], ts); sc.IsValid() {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// Parse returns the span context of a traceparent and tracestate; not
// valid when the traceparent is not.
func Parse(traceparent, tracestate string) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &carrier{traceparent, tracestate}))
}

// AppendTraceparent appends sc as a version-00 traceparent value.
func AppendTraceparent(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	if sc.IsSampled() {
		return append(dst, "-01"...)
	}
	return append(dst, "-00"...)
}

// Traceparent returns sc as a traceparent value, "" when sc is not valid.
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [TraceparentLen]byte
	return string(AppendTraceparent(b[:0], sc))
}

// Tracestate returns sc's tracestate, "" when it has none or it is too
// long to send on.
func Tracestate(sc trace.SpanContext) string {
	if sc.TraceState().Len() == 0 {
		return ""
	}
	s := sc.TraceState().String()
	if len(s) > MaxTracestate {
		return ""
	}
	return s
}

// InjectHeader sets the Traceparent and Tracestate headers of an upstream
// request from ctx's span (the gateway's upstream-call span, or the
// client's context passed on when tracing is off), replacing any there;
// h is left alone when ctx carries none.
func InjectHeader(ctx context.Context, h http.Header) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	h[HeaderTraceparent] = []string{Traceparent(sc)}
	if ts := Tracestate(sc); ts != "" {
		h[HeaderTracestate] = []string{ts}
	} else {
		delete(h, HeaderTracestate)
	}
}

// InjectMeta returns the _meta to send an upstream: meta with the
// traceparent and tracestate of ctx's span. meta is never modified: a
// copy is made when something changes; meta itself is returned when ctx
// carries no span context or meta already carries it.
func InjectMeta(ctx context.Context, meta map[string]any) map[string]any {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return meta
	}
	tp, ts := Traceparent(sc), Tracestate(sc)
	if cur, _ := meta[MetaTraceparent].(string); cur == tp {
		if cts, _ := meta[MetaTracestate].(string); cts == ts {
			return meta
		}
	}
	out := make(map[string]any, len(meta)+2)
	for k, v := range meta {
		out[k] = v
	}
	out[MetaTraceparent] = tp
	if ts != "" {
		out[MetaTracestate] = ts
	} else {
		delete(out, MetaTracestate)
	}
	return out
}

// AppendMetaMembers appends the traceparent and tracestate members of sc
// (`"traceparent":"00-…"`, and `,"tracestate":"…"` when it has one) for a
// _meta object, with no separator before them.
func AppendMetaMembers(dst []byte, sc trace.SpanContext) []byte {
	dst = append(dst, `"traceparent":"`...)
	dst = AppendTraceparent(dst, sc)
	dst = append(dst, '"')
	if ts := Tracestate(sc); ts != "" {
		dst = append(dst, `,"tracestate":`...)
		dst = rawwire.AppendString(dst, ts)
	}
	return dst
}

// SpliceMeta appends the _meta object meta (raw JSON validated by
// jsonguard; nil or empty: none was sent) to dst with the trace context
// of sc: its own traceparent and tracestate members dropped, sc's added
// after the others, which go through edit (nil: as they are). With sc not
// valid, meta goes through edit alone. This is how the hot path carries
// trace context to an upstream without decoding the request.
func SpliceMeta(dst, meta []byte, sc trace.SpanContext, edit rawwire.Edit) ([]byte, error) {
	if len(meta) == 0 {
		meta = emptyObject
	}
	if !sc.IsValid() {
		return rawwire.AppendObject(dst, meta, edit)
	}
	return rawwire.AppendObjectTail(dst, meta, func(key, val []byte) ([]byte, bool) {
		switch string(key) {
		case MetaTraceparent, MetaTracestate:
			return nil, false
		}
		if edit == nil {
			return nil, true
		}
		return edit(key, val)
	}, func(dst []byte, empty bool) []byte {
		if !empty {
			dst = append(dst, ',')
		}
		return AppendMetaMembers(dst, sc)
	})
}

var emptyObject = []byte("{}")

// MetaCarries reports whether the _meta object meta already carries sc's
// traceparent and tracestate exactly, so that it can go on as it is.
func MetaCarries(meta []byte, sc trace.SpanContext) bool {
	tp, ts := FromMeta(meta)
	if len(tp) != TraceparentLen {
		return false
	}
	var b [TraceparentLen]byte
	return string(AppendTraceparent(b[:0], sc)) == tp && ts == Tracestate(sc)
}
