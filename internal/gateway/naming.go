package gateway

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxNameLen is the longest tool or prompt name the aggregated endpoint
// exposes. The MCP spec allows 128 characters, but several widely used model
// APIs refuse tool names over 64, so the gateway stays within that.
const MaxNameLen = 64

// Separator joins an upstream's prefix and an item's own name.
const Separator = "__"

// NamespacedName returns the aggregated name for an item called name on an
// upstream with the given prefix.
//
// The result uses only the characters the MCP spec allows in tool names
// (A-Z a-z 0-9 _ - .); any other byte is replaced by '_'. A result longer than
// [MaxNameLen] is shortened deterministically: it keeps a readable head and
// ends in '_' plus the first 8 hex digits of the SHA-256 of the full
// (unsanitised) "prefix__name", so the same input always gets the same name
// and two long names that share a head still differ.
func NamespacedName(prefix, name string) string {
	full := name
	if prefix != "" {
		full = prefix + Separator + name
	}
	clean := sanitize(full)
	if len(clean) <= MaxNameLen && clean == full && clean != "" {
		return clean
	}
	if len(clean) <= MaxNameLen && clean != "" {
		// Sanitising lost information ("a/b" and "a:b" both become "a_b"):
		// add the hash so that such names cannot collide.
		if len(clean)+9 <= MaxNameLen {
			return clean + "_" + shortHash(full)
		}
	}
	head := clean
	if len(head) > MaxNameLen-9 {
		head = head[:MaxNameLen-9]
	}
	return head + "_" + shortHash(full)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !validNameByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func validNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}
