package pin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/mcpedge/mcpedge/internal/canonjson"
	"github.com/mcpedge/mcpedge/internal/store"
)

// pinnedFields are, per kind, the JSON members of an item that a model
// reads, and so what a pin covers. Other members (icons, _meta) are served
// as the upstream offers them.
var pinnedFields = map[string][]string{
	store.PinTool:     {"name", "title", "description", "inputSchema", "outputSchema", "annotations"},
	store.PinPrompt:   {"name", "title", "description", "arguments"},
	store.PinTemplate: {"uriTemplate", "name", "title", "description", "mimeType"},
}

// Definition returns the canonical JSON of the members of item (a tool,
// prompt or resource template of kind kind, as JSON) that a pin covers,
// and its fingerprint, the hex SHA-256 of that JSON. Key order, white
// space and members outside the pin do not change either.
func Definition(kind string, item []byte) (def []byte, hash string, err error) {
	fields, ok := pinnedFields[kind]
	if !ok {
		return nil, "", fmt.Errorf("pin: unknown kind %q", kind)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(item, &all); err != nil {
		return nil, "", fmt.Errorf("pin: %s definition: %w", kind, err)
	}
	if all == nil {
		return nil, "", fmt.Errorf("pin: %s definition is not a JSON object", kind)
	}
	kept := map[string]json.RawMessage{}
	for _, f := range fields {
		if v, ok := all[f]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			kept[f] = v
		}
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return nil, "", fmt.Errorf("pin: %s definition: %w", kind, err)
	}
	def, ok = canonjson.Canonical(raw)
	if !ok {
		return nil, "", fmt.Errorf("pin: %s definition is not valid JSON", kind)
	}
	sum := sha256.Sum256(def)
	return def, hex.EncodeToString(sum[:]), nil
}

// substitute returns item (JSON) with the members a pin covers replaced
// by those of def: what is served under "hold".
func substitute(kind string, item, def []byte) ([]byte, error) {
	var all, pinned map[string]json.RawMessage
	if err := json.Unmarshal(item, &all); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def, &pinned); err != nil {
		return nil, fmt.Errorf("pinned definition: %w", err)
	}
	if all == nil {
		all = map[string]json.RawMessage{}
	}
	for _, f := range pinnedFields[kind] {
		delete(all, f)
	}
	for k, v := range pinned {
		all[k] = v
	}
	return json.Marshal(all)
}

// Pretty indents a canonical definition for people (the diff's input).
func Pretty(def []byte) string {
	if len(def) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Indent(&b, def, "", "  "); err != nil {
		return string(def)
	}
	return b.String() + "\n"
}
