package jsonguard

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

var messageCases = []struct {
	name string
	in   string
	kind Kind // 0: accepted
	msg  string
}{
	{"string id", `{"jsonrpc":"2.0","id":"a","method":"ping"}`, 0, ""},
	{"integer id", `{"jsonrpc":"2.0","id":7,"method":"ping"}`, 0, ""},
	{"negative id", `{"jsonrpc":"2.0","id":-7,"method":"ping"}`, 0, ""},
	{"2^53", `{"jsonrpc":"2.0","id":9007199254740992,"method":"ping"}`, 0, ""},
	{"-2^53", `{"jsonrpc":"2.0","id":-9007199254740992,"method":"ping"}`, 0, ""},
	{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 0, ""},
	{"null id in an error response", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, 0, ""},
	{"result response", `{"jsonrpc":"2.0","id":3,"result":{}}`, 0, ""},
	{"fraction", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, ErrID, "not an integer"},
	{"integral fraction", `{"jsonrpc":"2.0","id":1.0,"method":"ping"}`, ErrID, "not an integer"},
	{"exponent", `{"jsonrpc":"2.0","id":1e2,"method":"ping"}`, ErrID, "not an integer"},
	{"huge exponent", `{"jsonrpc":"2.0","id":1e400,"method":"ping"}`, ErrID, "not an integer"},
	{"2^53+1", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, ErrID, "too large"},
	{"-2^53-1", `{"jsonrpc":"2.0","id":-9007199254740993,"method":"ping"}`, ErrID, "too large"},
	{"beyond uint64", `{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}`, ErrID, "too large"},
	{"true", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, ErrID, "a boolean"},
	{"object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, ErrID, "an object"},
	{"array", `{"jsonrpc":"2.0","id":[],"method":"ping"}`, ErrID, "an array"},
	{"null id in a request", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, ErrID, "null"},
	{"null id in a result", `{"jsonrpc":"2.0","id":null,"result":{}}`, ErrID, "null"},
	{"id after params", `{"jsonrpc":"2.0","method":"ping","params":{},"id":2.5}`, ErrID, ""},

	{"Method", `{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call"}`, ErrKeyCase, `"Method" differs only in case from the protocol member "method"`},
	{"PARAMS", `{"jsonrpc":"2.0","id":1,"method":"tools/list","PARAMS":{}}`, ErrKeyCase, `"params"`},
	{"ID", `{"jsonrpc":"2.0","id":1,"ID":2,"method":"ping"}`, ErrKeyCase, `"id"`},
	{"Jsonrpc", `{"Jsonrpc":"2.0","id":1,"method":"ping"}`, ErrKeyCase, `"jsonrpc"`},
	{"Result", `{"jsonrpc":"2.0","id":1,"Result":{}}`, ErrKeyCase, `"result"`},
	{"escaped Method", `{"jsonrpc":"2.0","id":1,"method":"ping","\u004dethod":"x"}`, ErrKeyCase, ""},
	{"long s in params", `{"jsonrpc":"2.0","id":1,"method":"ping","paramſ":{}}`, ErrKeyCase, ""},
	{"Name in tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","Name":"rm_rf"}}`, ErrKeyCase, `in the params of tools/call`},
	{"Arguments in tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","Arguments":{}}}`, ErrKeyCase, `"arguments"`},
	{"long s in arguments", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","argumentſ":{}}}`, ErrKeyCase, `"arguments"`},
	{"_META in tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_META":{}}}`, ErrKeyCase, `"_meta"`},
	{"NAME in prompts/get", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"NAME":"x","name":"y"}}`, ErrKeyCase, ""},
	{"URI in resources/read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a:b","URI":"file:///etc/passwd"}}`, ErrKeyCase, `"uri"`},
	{"Uri in resources/subscribe", `{"params":{"Uri":"a:b"},"jsonrpc":"2.0","id":1,"method":"resources/subscribe"}`, ErrKeyCase, ""},
	{"params before method", `{"params":{"Name":"x"},"method":"tools/call","jsonrpc":"2.0","id":1}`, ErrKeyCase, ""},
	{"exact keys nested are fine", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"Name":"n","URI":"u","Method":"m"}}}`, 0, ""},
	{"other methods' params are not checked", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"Name":"x"}}`, 0, ""},
	{"unrelated keys", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","names":1,"argumentsX":2}}`, 0, ""},
}

func TestCheckMessage(t *testing.T) {
	for _, tc := range messageCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check([]byte(tc.in), Limits{}); err != nil {
				t.Fatalf("case is not valid JSON for Check: %v", err)
			}
			err := CheckMessage([]byte(tc.in))
			if got := KindOf(err); got != tc.kind {
				t.Fatalf("CheckMessage(%s) = %v, want kind %v", tc.in, err, tc.kind)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// FuzzCheckMessage: whatever CheckMessage accepts, a case-insensitive
// decoder (encoding/json into a struct) reads the same method, id, name,
// uri and arguments as an exact reading of the keys, and the id survives a
// round trip through float64 unchanged.
func FuzzCheckMessage(f *testing.F) {
	for _, s := range seedInputs() { // includes messageCases
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(data, Limits{}) != nil {
			_ = CheckMessage(data) // must not panic
			return
		}
		err := CheckMessage(data)
		if err != nil {
			if k := KindOf(err); k != ErrID && k != ErrKeyCase {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		type params struct {
			Name      json.RawMessage
			URI       json.RawMessage
			Arguments json.RawMessage
		}
		var folded struct {
			Method json.RawMessage
			ID     json.RawMessage
			Params json.RawMessage
		}
		var exact map[string]json.RawMessage
		if json.Unmarshal(data, &folded) != nil || json.Unmarshal(data, &exact) != nil {
			return
		}
		if !bytes.Equal(folded.Method, exact["method"]) || !bytes.Equal(folded.ID, exact["id"]) || !bytes.Equal(folded.Params, exact["params"]) {
			t.Fatalf("a case-insensitive decoder reads another envelope: %s", data)
		}
		var method string
		_ = json.Unmarshal(exact["method"], &method)
		switch method {
		case "tools/call", "prompts/get", "resources/read", "resources/subscribe", "resources/unsubscribe":
			var fp params
			var ep map[string]json.RawMessage
			if json.Unmarshal(exact["params"], &fp) == nil && json.Unmarshal(exact["params"], &ep) == nil {
				if !bytes.Equal(fp.Name, ep["name"]) || !bytes.Equal(fp.URI, ep["uri"]) || !bytes.Equal(fp.Arguments, ep["arguments"]) {
					t.Fatalf("a case-insensitive decoder reads other params: %s", data)
				}
			}
		}
		if id := bytes.TrimSpace(exact["id"]); len(id) > 0 && id[0] != '"' && id[0] != 'n' {
			var fl float64
			if err := json.Unmarshal(id, &fl); err != nil {
				t.Fatalf("accepted id %s does not decode as a number: %v", id, err)
			}
			if got := strconv.FormatFloat(fl, 'f', -1, 64); got != string(id) {
				t.Fatalf("accepted id %s is read as %v by a float64 decoder", id, fl)
			}
		}
	})
}
