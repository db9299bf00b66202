package principal

import "encoding/json"

// MetaKey is the _meta key through which the gateway tells its built-in
// servers (and only them) who is calling. It is hop-by-hop: a client's
// value is always removed before a call leaves the gateway.
const MetaKey = "io.mcpedge/principal"

// Meta is the value of the MetaKey key.
type Meta struct {
	TenantID string `json:"tenant_id"`
	Tenant   string `json:"tenant"`
	Plan     string `json:"plan"`
	Operator bool   `json:"operator,omitempty"`
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Role     string `json:"role"`
}

// FromMeta returns who is calling a built-in server, as the gateway put it
// in the request's _meta; nil when absent (single-user mode, or a call that
// did not come through the gateway).
func FromMeta(m map[string]any) *Meta {
	v, ok := m[MetaKey]
	if !ok {
		return nil
	}
	switch x := v.(type) {
	case Meta:
		return &x
	case *Meta:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var pm Meta
	if json.Unmarshal(b, &pm) != nil {
		return nil
	}
	return &pm
}
