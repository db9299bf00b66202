package principal

import (
	"encoding/json"
	"testing"
)

// FromMeta reads the value the gateway put (a Meta or *Meta) and the same
// value after a JSON round trip (a builtin reached over a transport).
func TestFromMeta(t *testing.T) {
	want := Meta{TenantID: "t1", Tenant: "acme", Plan: "pro", ID: "k1", Kind: KindKey, Role: RoleMember}
	b, _ := json.Marshal(map[string]any{MetaKey: want})
	var decoded map[string]any
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]map[string]any{
		"value":   {MetaKey: want},
		"pointer": {MetaKey: &want},
		"decoded": decoded,
	} {
		got := FromMeta(m)
		if got == nil || *got != want {
			t.Errorf("%s: FromMeta = %+v, want %+v", name, got, want)
		}
	}
	if FromMeta(nil) != nil || FromMeta(map[string]any{"other": 1}) != nil {
		t.Error("FromMeta without the key must be nil")
	}
	if FromMeta(map[string]any{MetaKey: "not an object"}) != nil {
		t.Error("FromMeta of a malformed value must be nil")
	}
}
