package pipeline

import "slices"

// This file is the order of the data plane. Every call that reaches an
// upstream passes through the stages below, top to bottom, and its result
// comes back bottom to top. A stage feels the effects of every stage below
// it and must not care what the stages above it do. To add a stage: write
// its package (internal/stage/<name>), add one line here, and hand it to
// the wiring (internal/gateway/stages.go).
//
// What happens before the first stage, at the HTTP edge (request id, Host
// and Origin checks, credentials, body guard, rate limits and quotas) and
// in the client session (initialize, the protocol era, finding a listed
// item) is not a stage: it applies to every request, not only to calls
// that reach an upstream.
//
// A queued call's delivery enters after cache (route, forward): it was
// audited and authorized when the client made the call, and is neither
// answered from the cache nor queued again.

// Entry is one stage in the order: its name, and the methods it applies to
// (nil: every method in [Methods]).
type Entry struct {
	Name    string
	Methods []string
}

// Order returns the stages in the order a call passes through them. The
// last one is the terminal: it sends the call to the upstream.
func Order() []Entry {
	return []Entry{
		// audit records every tools/call with who, what, outcome and latency
		// (arguments hashed), refused ones too; in single-user mode as well.
		{Name: "audit", Methods: []string{MethodCallTool}},
		// meter counts every tools/call by tenant, caller, upstream, tool
		// and outcome for usage metering (one in-memory increment; the
		// store is written in batches). Below audit and above authorize,
		// so that refused calls are counted as denied, like audit's.
		{Name: "meter", Methods: []string{MethodCallTool}},
		// authorize refuses what the caller's role, scopes, virtual servers
		// and rules do not allow, in words that do not tell it apart from
		// an item that does not exist.
		{Name: "authorize"},
		// uricheck refuses a resource URI that climbs out of its directory
		// (file: with "..", plain or percent-encoded) or carries control
		// characters or a broken escape. Before dispatch, so that the SDK
		// server never matches such a URI against a template.
		{Name: "uricheck", Methods: []string{MethodReadResource, MethodSubscribe, MethodUnsubscribe}},
		// dispatch is where the client session's SDK server finds the item
		// the client named and calls its handler, which resumes the chain
		// (an item the gateway serves itself, like mcpedge__status, is
		// answered here). Protocol-era handling of results happens here.
		{Name: "dispatch"},
		// argcheck refuses a tools/call whose arguments do not match the
		// inputSchema of the tool the caller was shown. Here, after
		// dispatch, because only here is the tool known the way it will
		// be called, on both ways in: the SDK server has found the item
		// (an unknown tool is its "unknown tool", never an argument
		// error) and its handler has set the target when resuming, and
		// the hot path set the target before the chain ran. Above defer
		// and cache, so that a bad call is neither queued, nor answered
		// from the cache, nor stored in it; above route, so that it never
		// reaches a target. Below authorize, so that only permitted calls
		// are inspected, and below audit, which records its refusals as
		// denied. A queued call's delivery enters below it: it was checked
		// when it was queued.
		{Name: "argcheck", Methods: []string{MethodCallTool}},
		// explain attaches the routing explanation to the result when the
		// request asks for it.
		{Name: "explain", Methods: []string{MethodCallTool, MethodGetPrompt, MethodReadResource}},
		// defer queues a deferrable tool call whose upstream is unavailable
		// (after the cache: a stale answer is served before a call is queued).
		{Name: "defer", Methods: []string{MethodCallTool}},
		// cache answers read-only tools and resources from the response
		// cache, and stores what the upstream answered.
		{Name: "cache", Methods: []string{MethodCallTool, MethodReadResource}},
		// guard strips hidden Unicode and escapes from results and redacts
		// secrets ([guard] results). Below cache, so that the cache keeps
		// what was scanned: a secret never sits in it and a hit is served
		// clean without being scanned again (an entry stored before guard
		// was turned on is served as it is until its TTL). Above route, so
		// that it scans the one result route settles on, not each attempt;
		// a queued delivery (entering after cache) is scanned too.
		{Name: "guard", Methods: []string{MethodCallTool, MethodGetPrompt, MethodReadResource}},
		// route picks the target (connection) of the upstream for each
		// attempt and falls back to the next one. Completions and
		// subscriptions pick theirs in forward (they follow the target of
		// the item they refer to).
		{Name: "route", Methods: []string{MethodCallTool, MethodGetPrompt, MethodReadResource}},
		// forward sends the call to the chosen target through its circuit
		// breaker, timeouts and retries, translating between protocol eras.
		{Name: "forward"},
	}
}

// The methods the pipeline carries: every request that reaches an upstream.
const (
	MethodCallTool     = "tools/call"
	MethodGetPrompt    = "prompts/get"
	MethodReadResource = "resources/read"
	MethodComplete     = "completion/complete"
	MethodSubscribe    = "resources/subscribe"
	MethodUnsubscribe  = "resources/unsubscribe"
)

// Methods returns the methods the pipeline carries.
func Methods() []string {
	return []string{MethodCallTool, MethodGetPrompt, MethodReadResource, MethodComplete, MethodSubscribe, MethodUnsubscribe}
}

func (e Entry) appliesTo(method string) bool {
	return e.Methods == nil || slices.Contains(e.Methods, method)
}
