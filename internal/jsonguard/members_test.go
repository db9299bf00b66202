package jsonguard

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestMembersReportsKeysAndRawValues(t *testing.T) {
	in := []byte(` { "name" : "echo", "a\u0062c":[1, {"x":"}"}] ,"_meta":{"k":"v"},"n":null } `)
	var keys, raws, vals []string
	if err := Members(in, func(m Member) bool {
		keys = append(keys, string(m.Key))
		raws = append(raws, string(m.RawKey))
		vals = append(vals, string(m.Value))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"name", "abc", "_meta", "n"}
	wantRaws := []string{`"name"`, `"a\u0062c"`, `"_meta"`, `"n"`}
	wantVals := []string{`"echo"`, `[1, {"x":"}"}]`, `{"k":"v"}`, `null`}
	for i := range wantKeys {
		if i >= len(keys) || keys[i] != wantKeys[i] || raws[i] != wantRaws[i] || vals[i] != wantVals[i] {
			t.Fatalf("members = %q %q %q, want %q %q %q", keys, raws, vals, wantKeys, wantRaws, wantVals)
		}
	}
	if len(keys) != len(wantKeys) {
		t.Fatalf("%d members, want %d", len(keys), len(wantKeys))
	}
}

func TestMembersStopsWhenAsked(t *testing.T) {
	n := 0
	if err := Members([]byte(`{"a":1,"b":2,"c":3}`), func(Member) bool { n++; return n < 2 }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("fn called %d times, want 2", n)
	}
}

func TestMembersRefusesWhatIsNotAnObject(t *testing.T) {
	for _, in := range []string{``, `  `, `[]`, `"s"`, `{"a"`, `{"a":`, `{"a":1`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`} {
		err := Members([]byte(in), func(Member) bool { return true })
		if err == nil {
			t.Errorf("Members(%q) = nil, want an error", in)
		}
	}
	if err := Members([]byte(`{}`), func(Member) bool { t.Fatal("member in {}"); return true }); err != nil {
		t.Fatal(err)
	}
}

func TestUnquote(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", `""`: "", `"a\"b\u00e9\n"`: "a\"b\u00e9\n"} {
		got, ok := Unquote([]byte(in))
		if !ok || got != want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{``, `"`, `abc`, `1`, `null`, `{"a":1}`, `"bad \x"`} {
		if _, ok := Unquote([]byte(in)); ok {
			t.Errorf("Unquote(%s) accepted", in)
		}
	}
}

// FuzzMembers checks Members against encoding/json on every object that
// Check accepts: the same keys, in the input's order, with the same values.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"name":"x","arguments":{"m":"y"},"_meta":{"p":[1,2]}}`,
		`{"a\u0062":"\"}","c":[{"d":"]"}]}`, ` {"k" : true , "l":null} `, `{"content":[{"type":"text","text":"hi"}],"isError":false}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if Check(in, Limits{}) != nil {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(in, &want); err != nil {
			t.Fatalf("Check accepted %q, encoding/json refused it: %v", in, err)
		}
		seen := 0
		err := Members(in, func(m Member) bool {
			seen++
			w, ok := want[string(m.Key)]
			if !ok {
				t.Fatalf("Members reported key %q that encoding/json did not find in %q", m.Key, in)
			}
			var a, b bytes.Buffer
			if json.Compact(&a, m.Value) != nil || json.Compact(&b, w) != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatalf("value of %q: Members %q, encoding/json %q", m.Key, m.Value, w)
			}
			var k string
			if err := json.Unmarshal(m.RawKey, &k); err != nil || k != string(m.Key) {
				t.Fatalf("raw key %q does not decode to %q", m.RawKey, m.Key)
			}
			return true
		})
		if err != nil {
			t.Fatalf("Members(%q): %v", in, err)
		}
		if seen != len(want) {
			t.Fatalf("Members saw %d members, encoding/json %d, in %q", seen, len(want), in)
		}
	})
}

func TestLookup(t *testing.T) {
	msg := []byte(`{"jsonrpc":"2.0","params":{"n\u0061me":"x","arguments":{"a":[1]}},"id":1}`)
	if got := Lookup(msg, "params"); string(got) != `{"n\u0061me":"x","arguments":{"a":[1]}}` {
		t.Fatalf("params = %s", got)
	}
	if got := Lookup(Lookup(msg, "params"), "name"); string(got) != `"x"` {
		t.Fatalf("params.name = %s (keys are compared unescaped)", got)
	}
	if got := Lookup(Lookup(msg, "params"), "arguments"); string(got) != `{"a":[1]}` {
		t.Fatalf("params.arguments = %s", got)
	}
	for _, tc := range []struct{ obj, key string }{{`{"a":1}`, "b"}, {`[1]`, "a"}, {``, "a"}, {`"s"`, "a"}} {
		if got := Lookup([]byte(tc.obj), tc.key); got != nil {
			t.Errorf("Lookup(%s, %s) = %s, want nil", tc.obj, tc.key, got)
		}
	}
}

func TestElements(t *testing.T) {
	var got []string
	err := Elements([]byte(` [ {"uri":"a,]"} , 1 ,"x]", [2,[3]] ,null ] `), func(el []byte) bool {
		got = append(got, string(el))
		return true
	})
	if err != nil || strings.Join(got, "|") != `{"uri":"a,]"}|1|"x]"|[2,[3]]|null` {
		t.Fatalf("Elements: %q, %v", got, err)
	}
	n := 0
	if err := Elements([]byte(`[1,2,3]`), func([]byte) bool { n++; return n < 2 }); err != nil || n != 2 {
		t.Fatalf("stopping early: %d elements, %v", n, err)
	}
	if err := Elements([]byte(`[]`), func([]byte) bool { t.Fatal("an element of []"); return true }); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{``, `{}`, `[1`, `[1 2]`, `"a"`} {
		if err := Elements([]byte(in), func([]byte) bool { return true }); err == nil {
			t.Errorf("Elements(%q) accepted", in)
		}
	}
}

// FuzzElements checks Elements against encoding/json on every array member
// of an object that Check accepts.
func FuzzElements(f *testing.F) {
	for _, s := range []string{`{"a":[]}`, `{"contents":[{"uri":"x","mimeType":"t","text":"]"}]}`, `{"a":[1, "2" ,[3,{"b":[4]}],null,true]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if Check(in, Limits{}) != nil {
			return
		}
		_ = Members(in, func(m Member) bool {
			if m.Value[0] != '[' {
				return true
			}
			var want []json.RawMessage
			if err := json.Unmarshal(m.Value, &want); err != nil {
				t.Fatalf("encoding/json refused %q: %v", m.Value, err)
			}
			i := 0
			err := Elements(m.Value, func(el []byte) bool {
				var a, b bytes.Buffer
				if i >= len(want) || json.Compact(&a, el) != nil || json.Compact(&b, want[i]) != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Fatalf("element %d of %q: %q", i, m.Value, el)
				}
				i++
				return true
			})
			if err != nil || i != len(want) {
				t.Fatalf("Elements(%q): %d of %d elements, %v", m.Value, i, len(want), err)
			}
			return true
		})
	})
}
