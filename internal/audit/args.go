package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/mcpedge/mcpedge/internal/canonjson"
)

// Argument policies: how much of a tool call's arguments an audit entry
// keeps (toml [audit] arguments).
const (
	ArgsHash   = "hash"   // a SHA-256 of the canonical arguments, and their size
	ArgsRedact = "redact" // only their size
	ArgsFull   = "full"   // the arguments themselves, in canonical form
)

// ArgumentsDetail returns the facts an audit entry's Detail records about
// a tool call's arguments under policy:
//
//   - ArgsHash: {"args_sha256": "<hex>", "args_bytes": n}, where the hash is
//     over the canonical JSON of args (see below);
//   - ArgsRedact: {"args_bytes": n};
//   - ArgsFull: {"args": <canonical JSON of args>}.
//
// n is len(args), the size the client sent. Arguments that are not one
// valid JSON value record only {"args_bytes": n, "args_invalid": true},
// whatever the policy; absent arguments (len(args) == 0) record
// {"args_bytes": 0}. An unknown policy is treated as ArgsRedact, the one
// that reveals least (configuration validation rejects unknown policies).
//
// The canonical JSON of a value is what Go's encoding/json writes for it,
// with HTML escaping off, after decoding it with numbers kept as written:
// no insignificant whitespace; object keys sorted by their UTF-8 bytes
// (duplicate keys keep the last value); numbers exactly as they appear in
// args (1.0 and 1 hash differently; this is not RFC 8785); strings with
// only '"', '\\', control characters, U+2028 and U+2029 escaped, and
// invalid UTF-8 replaced by U+FFFD. So a client that knows the arguments
// it sent can recompute args_sha256, while the log does not hold them.
func ArgumentsDetail(policy string, args json.RawMessage) map[string]any {
	n := len(args)
	if n == 0 {
		return map[string]any{"args_bytes": 0}
	}
	canon, ok := canonjson.Canonical(args)
	if !ok {
		return map[string]any{"args_bytes": n, "args_invalid": true}
	}
	switch policy {
	case ArgsHash:
		sum := sha256.Sum256(canon)
		return map[string]any{"args_sha256": hex.EncodeToString(sum[:]), "args_bytes": n}
	case ArgsFull:
		return map[string]any{"args": json.RawMessage(canon)}
	default:
		return map[string]any{"args_bytes": n}
	}
}
