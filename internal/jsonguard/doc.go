// Package jsonguard validates the exact bytes of a client's JSON-RPC message
// before the gateway forwards them upstream.
//
// # Why
//
// The gateway does not re-encode messages: after its checks pass it forwards
// the very bytes it received. Whatever the gateway concluded about a message
// (its method, the tool it names, the policy that applies) is therefore only
// sound if every upstream JSON parser reads those bytes the same way the
// gateway did. JSON leaves several corners where conforming parsers disagree,
// and each disagreement is a parser-differential attack vector between the
// gateway and an upstream server:
//
//   - Duplicate object keys: {"name":"safe_tool","name":"rm_rf"} is "safe_tool"
//     to a first-wins parser and "rm_rf" to a last-wins parser (such as
//     encoding/json). Check rejects duplicates at every level, comparing keys
//     after unescaping, so "a" and "\u0061" are duplicates.
//   - Invalid UTF-8 and unpaired UTF-16 surrogate escapes ("\ud800"): some
//     parsers reject them, others replace them with U+FFFD (making distinct
//     keys or names compare equal), others pass them through. Check rejects
//     both raw invalid UTF-8 anywhere in the input and unpaired surrogate
//     escapes inside strings (a high surrogate escape must be immediately
//     followed by a low surrogate escape; a low surrogate escape must follow
//     a high one).
//   - Trailing data after the value, a byte order mark, non-JSON whitespace:
//     lenient parsers skip them, strict ones fail. Check rejects them.
//   - Unbounded nesting: a cheap way to exhaust a recursive parser's stack.
//     Check enforces [Limits.MaxDepth].
//
// In addition Check enforces the MCP framing rule that a message body is a
// single JSON object: top-level arrays (JSON-RPC batches, removed from MCP in
// revision 2025-06-18) and top-level scalars are rejected.
//
// Numbers are checked against the JSON grammar only; their magnitude and
// precision are not limited (1e999 and 100-digit integers are valid JSON and
// are forwarded unchanged).
//
// # Cost
//
// Check runs on every request, so it is a hand-written single-pass scanner
// that does not allocate for messages of ordinary shape: the container
// stack, the list of keys of the open objects used for duplicate detection,
// and the buffer for unescaped keys all start in small fixed-size arrays on
// the stack. Keys are compared against the earlier keys of the same object
// (after a cheap fingerprint check); an object with more than 32 members
// switches to a hash map. Only such large objects, nesting deeper than
// DefaultMaxDepth, unusually many or long escaped keys, and errors allocate.
//
// [CheckMessage] closes two more differentials, specific to JSON-RPC: ids
// that a float64 decoder would round (1.5, 1e400, 9007199254740993) or that
// are not ids at all (true, {}, []), and keys that differ only in case from
// a protocol member ("Method", "Name"), which a case-insensitive decoder
// such as encoding/json reads as that member.
//
// [ParseEnvelope] extracts the few top-level fields the gateway routes on
// (for instance to verify the Mcp-Method and Mcp-Name HTTP headers against
// the body) without decoding params; it skips over values it does not need.
package jsonguard
