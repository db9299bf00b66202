package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"testing"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestArgumentsDetail(t *testing.T) {
	const args = `{ "b": [1, 2.50, "x<y&z"], "a": {"d": null, "c": true} }`
	const canon = `{"a":{"c":true,"d":null},"b":[1,2.50,"x<y&z"]}`
	tests := []struct {
		name   string
		policy string
		args   string
		want   map[string]any
	}{
		{"hash", ArgsHash, args, map[string]any{"args_sha256": sha(canon), "args_bytes": len(args)}},
		{"redact", ArgsRedact, args, map[string]any{"args_bytes": len(args)}},
		{"full", ArgsFull, args, map[string]any{"args": json.RawMessage(canon)}},
		{"unknown policy reveals least", "everything", args, map[string]any{"args_bytes": len(args)}},
		{"invalid hash", ArgsHash, `{"a":`, map[string]any{"args_bytes": 5, "args_invalid": true}},
		{"invalid full", ArgsFull, `{"a":1} {"b":2}`, map[string]any{"args_bytes": 15, "args_invalid": true}},
		{"invalid redact", ArgsRedact, `nope`, map[string]any{"args_bytes": 4, "args_invalid": true}},
		{"absent", ArgsFull, ``, map[string]any{"args_bytes": 0}},
		{"scalar", ArgsHash, ` 42 `, map[string]any{"args_sha256": sha("42"), "args_bytes": 4}},
		{"big number kept", ArgsFull, `{"n":123456789012345678901234567890}`, map[string]any{"args": json.RawMessage(`{"n":123456789012345678901234567890}`)}},
		{"escapes", ArgsFull, `{"s":"\u00e9\n\u2028"}`, map[string]any{"args": json.RawMessage(`{"s":"é\n\u2028"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ArgumentsDetail(tt.policy, json.RawMessage(tt.args))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ArgumentsDetail(%q, %s)\n got %#v\nwant %#v", tt.policy, tt.args, got, tt.want)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("detail does not marshal: %v", err)
			}
		})
	}
}

// TestArgumentsHashIgnoresFormatting: the same arguments, formatted or
// ordered differently, hash the same.
func TestArgumentsHashIgnoresFormatting(t *testing.T) {
	a := ArgumentsDetail(ArgsHash, json.RawMessage(`{"x":1,"y":[true,false]}`))
	b := ArgumentsDetail(ArgsHash, json.RawMessage("{\n  \"y\": [ true , false ],\n  \"x\": 1\n}"))
	if a["args_sha256"] != b["args_sha256"] {
		t.Fatalf("hashes differ: %v vs %v", a, b)
	}
	c := ArgumentsDetail(ArgsHash, json.RawMessage(`{"x":2,"y":[true,false]}`))
	if a["args_sha256"] == c["args_sha256"] {
		t.Fatal("different arguments hash the same")
	}
}
