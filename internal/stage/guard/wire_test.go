package guard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	detect "github.com/mcpedge/mcpedge/internal/guard"
)

// jsonValues is the reference for jsonStrings: every string value (not
// object key) of raw, decoded by encoding/json, in order.
func jsonValues(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct{ object, key bool }
	var stack []frame
	var out []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		isKey := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].key
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
				stack = append(stack, frame{object: v == '{', key: true})
			} else {
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if !isKey {
				out = append(out, v)
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = !isKey
		}
	}
}

func TestJSONStrings(t *testing.T) {
	for _, raw := range []string{
		`{"content":[{"type":"text","text":"a\nb \"q\" \\ \/ \u00e9 \ud83d\ude00 \ud800x"}],"n":1,"k" : "v"}`,
		`["x", {"a": ["y", {"b": "z"}]}, "w"]`,
		`"top"`,
		`{"a":{}, "b":[], "c":"\u0041\u200b"}`,
	} {
		text, ok := jsonStrings([]byte(raw), nil)
		want, err := jsonValues([]byte(raw))
		if err != nil || !ok {
			t.Fatalf("%s: ok %v, reference %v", raw, ok, err)
		}
		if got := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n"); !slices.Equal(got, strings.Split(strings.Join(want, "\n"), "\n")) {
			t.Errorf("%s:\n got %q\nwant %q", raw, got, want)
		}
	}
	for _, bad := range []string{`{"a":"unterminated`, `["\x"]`, `["\u12"]`, `["ok\`} {
		if _, ok := jsonStrings([]byte(bad), nil); ok {
			t.Errorf("%s: read as well-formed", bad)
		}
	}
}

// FuzzJSONStrings: for valid JSON, jsonStrings reads exactly the string
// values encoding/json decodes; and whenever the scan would change a
// result's text, mayChange says so (no secret or hidden character is
// relayed because the one-pass look missed it).
func FuzzJSONStrings(f *testing.F) {
	for _, s := range []string{"plain", "AKIAIOSFODNN7EXAMPLE", "a\u200bb", "\x1b[2J", "<tag> & \"q\"", "password: Zx9!kQ2#mPw", "\xff", "line\nfeed\u2028"} {
		f.Add(s)
	}
	sc := scanner{red: detect.NewRedactor(&detect.RedactOptions{PersonalData: true})}
	var pool sync.Pool
	f.Fuzz(func(t *testing.T, s string) {
		raw, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": s}}, s: s})
		text, ok := jsonStrings(raw, nil)
		want, err := jsonValues(raw)
		if err != nil || !ok {
			t.Fatalf("%q: ok %v, reference %v", raw, ok, err)
		}
		if string(text) != strings.Join(want, "\n")+"\n" {
			t.Fatalf("%q: read %q, want %q", raw, text, want)
		}
		var res struct{ Content []struct{ Text string } }
		if err := json.Unmarshal(raw, &res); err != nil {
			t.Fatal(err)
		}
		decoded := res.Content[0].Text // what the scan reads (invalid bytes are U+FFFD by now)
		if _, changed := (&scanner{red: sc.red}).text(decoded); changed && !sc.mayChange(raw, &pool) {
			t.Fatalf("the scan changes %q but mayChange of %s is false", decoded, raw)
		}
	})
}
