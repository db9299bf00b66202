// Package canonjson puts one JSON value into a canonical form, so that two
// encodings of the same arguments compare (and hash) equal: object keys
// sorted, no insignificant whitespace, numbers exactly as written, no HTML
// escaping. It is not RFC 8785 (numbers are not normalised); it only has to
// be stable within mcpedge, where the audit log hashes tool arguments with
// it and the response cache keys results by it.
package canonjson

import (
	"bytes"
	"encoding/json"
)

// Canonical returns the canonical form of raw, or false if raw is not
// exactly one valid JSON value.
func Canonical(raw []byte) ([]byte, bool) {
	if !json.Valid(raw) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), true
}
