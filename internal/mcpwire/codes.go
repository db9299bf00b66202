// Package mcpwire holds what mcpedge says on the wire that is its own, not
// the MCP SDK's: the JSON-RPC error codes the gateway answers with. Every
// code the gateway returns is in this file, so that a client author (and a
// reviewer) can see them all in one place.
package mcpwire

// JSON-RPC 2.0's own codes that the gateway answers with before the SDK
// sees a request (the HTTP edge's body checks).
const (
	// CodeParseError: the body is not valid JSON (or not UTF-8).
	CodeParseError = -32700
	// CodeInvalidRequest: valid JSON, but not an acceptable JSON-RPC
	// request (a batch, a bad id, a duplicate or case-folded key, too
	// deep, too large), or a request the HTTP edge refuses.
	CodeInvalidRequest = -32600
	// CodeInternalError: the gateway failed in a way that is its own
	// (for example a result it could not encode), or an error without a
	// code of its own reached the client of a hot-path call.
	CodeInternalError = -32603
)

// The gateway's own codes, in the implementation-defined server-error
// range (-32000 to -32099).
const (
	// CodeUpstreamUnavailable: the upstream could not be reached (not
	// connected, connection refused, circuit breaker open, no target);
	// the message says why. A deferrable tool call is queued instead.
	CodeUpstreamUnavailable = -32010
	// CodeUpstreamTimeout: the upstream did not answer within the call's
	// timeout (the upstream's, or the tool's own).
	CodeUpstreamTimeout = -32011
	// CodeQueueFull: the call could not be queued: the offline queue is
	// full (for the tenant, or in all).
	CodeQueueFull = -32012
	// CodeRoutingRefused: the routing policy keeps this call on the
	// device (a local-only tool or tenant) and the upstream has no local
	// target.
	CodeRoutingRefused = -32013
	// CodeRateLimited: a rate limit or quota refused the request;
	// data.retryAfterMs says when to try again.
	CodeRateLimited = -32029
)

// CodeRejected is the code the MCP SDK's client gives a request that got
// no answer (it could not be sent, the connection broke, or the server
// answered with an HTTP error), with MsgRejected as its message. It is
// not the upstream's answer; the gateway never sends it to a client.
const (
	CodeRejected = -32005
	MsgRejected  = "rejected by transport"
)
