package jsonguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// toolsCall is a typical 1 KB tools/call request: nested arguments, arrays,
// numbers in all forms, escapes, non-ASCII text and _meta.
const toolsCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues","arguments":{"repository":"mcpedge/mcpedge","query":"label:bug state:open \"parser differential\" in:title,body","filters":{"labels":["bug","security","triage"],"assignees":[],"since":"2026-01-15T08:30:00Z","limit":50,"include_closed":false,"score_threshold":0.75,"weights":[1,2.5,-3e-2,1E+3]},"context":"The user asked: \u201cfind open security bugs about JSON parsing in the gateway\u201d.\nPrevious results were empty; widen the search to comments and linked pull requests.\tKeep results under 50 and sort them by last activity, newest first.","locale":"de-DE","notes":"Grüße aus München — naïve café résumé, 日本語のテキスト 🚀","max_tokens":4096,"temperature":null,"dry_run":true},"_meta":{"progressToken":"a7f3c9e2-5b1d-4e8a-9f6c-2d4b8e1a3c7f","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"mcpedge=t61rcWkgMzE,vendor=00f067aa0ba902b7","client":{"name":"example-agent","version":"3.14.1"}}}}`

// nest returns a top-level object containing depth-1 further containers,
// alternating arrays and objects, i.e. total nesting depth.
func nest(depth int) string {
	var open, closing strings.Builder
	open.WriteString(`{"a":`)
	closing.WriteString(`}`)
	for d := 2; d <= depth; d++ {
		if d%2 == 0 {
			open.WriteString(`[`)
			closing.WriteString(`]`)
		} else {
			open.WriteString(`{"k":`)
			closing.WriteString(`}`)
		}
	}
	open.WriteString(`1`)
	// closing was built outermost first; reverse it.
	c := []byte(closing.String())
	for i, j := 0, len(c)-1; i < j; i, j = i+1, j-1 {
		c[i], c[j] = c[j], c[i]
	}
	return open.String() + string(c)
}

func manyKeys(n int, dup string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"key%d":%d`, i, i)
	}
	if dup != "" {
		b.WriteString(`,` + dup + `:true`)
	}
	b.WriteString("}")
	return b.String()
}

var validCases = []struct {
	name string
	in   string
}{
	{"empty object", `{}`},
	{"empty object with inner whitespace", "{ \t\r\n}"},
	{"minimal request", `{"jsonrpc":"2.0","id":1,"method":"ping"}`},
	{"typical tools/call", toolsCall},
	{"leading and trailing whitespace", " \t\r\n{\"a\":1}\n\r\t "},
	{"whitespace everywhere", "{ \"a\" : [ 1 , { \"b\" : null } , true ] , \"c\" :\t\"d\"\r\n}"},
	{"empty array member", `{"a":[]}`},
	{"empty array with whitespace", `{"a":[ ]}`},
	{"nested empty object", `{"a":{}}`},
	{"all literals", `{"t":true,"f":false,"n":null}`},
	{"zero", `{"a":0}`},
	{"negative zero", `{"a":-0}`},
	{"fraction", `{"a":-0.5}`},
	{"exponents", `{"a":[1e5,1E5,1e+5,1e-5,1.5E-10,0e0,-0E+0]}`},
	{"huge integer", `{"a":` + strings.Repeat("9", 400) + `}`},
	{"huge exponent", `{"a":1e999999999999}`},
	{"tiny number", `{"a":-1.0e-999999}`},
	{"long fraction", `{"a":0.` + strings.Repeat("1", 300) + `}`},
	{"empty key", `{"":1}`},
	{"empty key and escaped non-empty", `{"":1,"\u0000":2}`},
	{"all simple escapes", `{"a":"\" \\ \/ \b \f \n \r \t"}`},
	{"unicode escapes", `{"a":"\u0000 \u001f \u00e9 \u20AC \uFFFF \uabcd"}`},
	{"surrogate pair escape", `{"a":"\ud83d\ude80"}`},
	{"surrogate pair escape upper case", `{"a":"\uD83D\uDE80"}`},
	{"max surrogate pair", `{"a":"\udbff\udfff"}`},
	{"escaped key", `{"\u0061b":1,"ab\u0063":2}`},
	{"raw multibyte UTF-8", `{"k":"é€😀 ü日本"}`},
	{"raw U+FFFD", "{\"a\":\"\xef\xbf\xbd\"}"},
	{"max code point", "{\"a\":\"\xf4\x8f\xbf\xbf\"}"},
	{"U+FEFF inside string", "{\"a\":\"\xef\xbb\xbf\"}"},
	{"DEL in string", "{\"a\":\"\x7f\"}"},
	{"same key in sibling objects", `{"a":{"x":1},"b":{"x":2}}`},
	{"same key at different levels", `{"x":{"x":{"x":1}}}`},
	{"same key in array elements", `{"a":[{"id":1},{"id":2}]}`},
	{"keys differing only in case", `{"id":1,"ID":2,"Id":3}`},
	{"keys that are prefixes", `{"a":1,"ab":2,"abc":3}`},
	{"same first and last byte and length", `{"abc":1,"axc":2}`},
	{"key equals value", `{"a":"a"}`},
	{"escaped and unescaped distinct", `{"\u0061":1,"b":2}`},
	{"32 keys (linear mode)", manyKeys(32, "")},
	{"33 keys (map mode)", manyKeys(33, "")},
	{"500 keys", manyKeys(500, "")},
	{"depth 64", nest(64)},
	{"long string crossing word boundaries", `{"a":"` + strings.Repeat("abcdefg", 100) + `"}`},
	{"quote at every alignment", `{"a":"","b":"x","c":"xy","d":"xyz","e":"wxyz","f":"vwxyz","g":"uvwxyz","h":"tuvwxyz","i":"stuvwxyz"}`},
}

func TestCheckValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Check([]byte(tc.in), Limits{}); err != nil {
				t.Fatalf("Check(%.80q) = %v, want nil", tc.in, err)
			}
		})
	}
}

var invalidCases = []struct {
	name   string
	in     string
	kind   Kind
	offset int // -1: not checked
}{
	// Empty and whitespace-only input.
	{"empty input", ``, ErrSyntax, 0},
	{"only whitespace", " \n\t\r", ErrSyntax, 4},

	// Top-level shape.
	{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, ErrBatch, 0},
	{"empty batch", `[]`, ErrBatch, 0},
	{"batch after whitespace", "\n [", ErrBatch, 2},
	{"top-level string", `"abc"`, ErrNotObject, 0},
	{"top-level number", `42`, ErrNotObject, 0},
	{"top-level negative number", `-1`, ErrNotObject, 0},
	{"top-level true", `true`, ErrNotObject, 0},
	{"top-level null", `null`, ErrNotObject, 0},
	{"top-level garbage", `x`, ErrSyntax, 0},

	// Trailing data.
	{"second object", `{}{}`, ErrTrailing, 2},
	{"trailing garbage after whitespace", "{} x", ErrTrailing, 3},
	{"trailing comma", `{},`, ErrTrailing, 2},
	{"trailing NUL", "{}\x00", ErrTrailing, 2},
	{"trailing invalid UTF-8", "{}\xff", ErrTrailing, 2},

	// Byte order mark and non-JSON whitespace.
	{"BOM", "\xef\xbb\xbf{}", ErrSyntax, 0},
	{"BOM after whitespace", " \xef\xbb\xbf{}", ErrSyntax, 1},
	{"BOM before member", "{\xef\xbb\xbf\"a\":1}", ErrSyntax, 1},
	{"form feed", "\f{}", ErrSyntax, 0},
	{"vertical tab", "{\v}", ErrSyntax, 1},
	{"NBSP", "{\xc2\xa0}", ErrSyntax, 1},
	{"U+2028 between tokens", "{\"a\":1\xe2\x80\xa8}", ErrSyntax, 6},
	{"NUL between tokens", "{\x00}", ErrSyntax, 1},

	// Objects.
	{"unclosed object", `{`, ErrSyntax, 1},
	{"unclosed object after member", `{"a":1`, ErrSyntax, 6},
	{"missing colon", `{"a" 1}`, ErrSyntax, 5},
	{"missing value", `{"a":}`, ErrSyntax, 5},
	{"missing value at end", `{"a":`, ErrSyntax, 5},
	{"trailing comma in object", `{"a":1,}`, ErrSyntax, 7},
	{"leading comma in object", `{,"a":1}`, ErrSyntax, 1},
	{"double comma", `{"a":1,,"b":2}`, ErrSyntax, 7},
	{"unquoted key", `{a:1}`, ErrSyntax, 1},
	{"single-quoted key", `{'a':1}`, ErrSyntax, 1},
	{"number key", `{1:1}`, ErrSyntax, 1},
	{"missing comma", `{"a":1 "b":2}`, ErrSyntax, 7},
	{"wrong closer", `{"a":1]`, ErrSyntax, 6},
	{"array closer for inner object", `{"a":{"b":1]}`, ErrSyntax, 11},

	// Arrays.
	{"unclosed array", `{"a":[1`, ErrSyntax, 7},
	{"trailing comma in array", `{"a":[1,]}`, ErrSyntax, 8},
	{"leading comma in array", `{"a":[,1]}`, ErrSyntax, 6},
	{"object closer for array", `{"a":[1}}`, ErrSyntax, 7},
	{"missing comma in array", `{"a":[1 2]}`, ErrSyntax, 8},

	// Literals.
	{"capitalized true", `{"a":True}`, ErrSyntax, 5},
	{"truncated true", `{"a":tru}`, ErrSyntax, 8},
	{"truncated false at end", `{"a":fals`, ErrSyntax, 9},
	{"misspelled null", `{"a":nul1}`, ErrSyntax, 8},
	{"literal with suffix", `{"a":truex}`, ErrSyntax, 9},
	{"NaN", `{"a":NaN}`, ErrSyntax, 5},
	{"Infinity", `{"a":Infinity}`, ErrSyntax, 5},
	{"undefined", `{"a":undefined}`, ErrSyntax, 5},

	// Numbers.
	{"leading zero", `{"a":01}`, ErrSyntax, 6},
	{"negative leading zero", `{"a":-01}`, ErrSyntax, 7},
	{"plus sign", `{"a":+1}`, ErrSyntax, 5},
	{"lone minus", `{"a":-}`, ErrSyntax, 6},
	{"minus at end", `{"a":-`, ErrSyntax, 6},
	{"leading dot", `{"a":.5}`, ErrSyntax, 5},
	{"trailing dot", `{"a":1.}`, ErrSyntax, 7},
	{"dot at end", `{"a":1.`, ErrSyntax, 7},
	{"empty exponent", `{"a":1e}`, ErrSyntax, 7},
	{"sign-only exponent", `{"a":1e+}`, ErrSyntax, 8},
	{"exponent at end", `{"a":1E-`, ErrSyntax, 8},
	{"double dot", `{"a":1.2.3}`, ErrSyntax, 8},
	{"hex number", `{"a":0x10}`, ErrSyntax, 6},
	{"minus minus", `{"a":--1}`, ErrSyntax, 6},
	{"minus space", `{"a":- 1}`, ErrSyntax, 6},

	// Strings.
	{"unterminated string", `{"a":"abc`, ErrSyntax, 9},
	{"unterminated key", `{"abc`, ErrSyntax, 5},
	{"unterminated long string", `{"a":"` + strings.Repeat("x", 40), ErrSyntax, 46},
	{"raw newline in string", "{\"a\":\"x\ny\"}", ErrSyntax, 7},
	{"raw tab in string", "{\"a\":\"\t\"}", ErrSyntax, 6},
	{"raw NUL in string", "{\"a\":\"\x00\"}", ErrSyntax, 6},
	{"raw 0x1f in long string", "{\"a\":\"abcdefghijklmnop\x1f\"}", ErrSyntax, 22},
	{"single-quoted string", `{"a":'x'}`, ErrSyntax, 5},

	// Escapes.
	{"invalid escape letter", `{"a":"\a"}`, ErrSyntax, 6},
	{"escaped single quote", `{"a":"\'"}`, ErrSyntax, 6},
	{"escaped x", `{"a":"\x41"}`, ErrSyntax, 6},
	{"escaped zero", `{"a":"\0"}`, ErrSyntax, 6},
	{"escaped newline", "{\"a\":\"\\\n\"}", ErrSyntax, 6},
	{"upper-case U escape", `{"a":"\U0041"}`, ErrSyntax, 6},
	{"short unicode escape", `{"a":"\u12"}`, ErrSyntax, 6},
	{"non-hex unicode escape", `{"a":"\u12g4"}`, ErrSyntax, 6},
	{"unicode escape at end", `{"a":"\u00`, ErrSyntax, 6},
	{"backslash at end", `{"a":"\`, ErrSyntax, 7},
	{"invalid escape in key", `{"\q":1}`, ErrSyntax, 2},

	// Unpaired surrogate escapes.
	{"lone high surrogate", `{"a":"\ud800"}`, ErrUTF8, 6},
	{"lone low surrogate", `{"a":"\udc00"}`, ErrUTF8, 6},
	{"lone high surrogate upper case", `{"a":"\uDBFF"}`, ErrUTF8, 6},
	{"high surrogate followed by text", `{"a":"\ud800abcdef"}`, ErrUTF8, 6},
	{"high surrogate followed by other escape", `{"a":"\ud800\n"}`, ErrUTF8, 6},
	{"high surrogate followed by BMP escape", `{"a":"\ud800\u0041"}`, ErrUTF8, 6},
	{"two high surrogates", `{"a":"\ud800\ud800"}`, ErrUTF8, 6},
	{"reversed pair", `{"a":"\udc00\ud800"}`, ErrUTF8, 6},
	{"high surrogate then invalid escape", `{"a":"\ud800\u12x4"}`, ErrSyntax, 12},
	{"high surrogate at end of string", `{"a":"x\ud800"}`, ErrUTF8, 7},
	{"lone surrogate in key", `{"\udfff":1}`, ErrUTF8, 2},
	{"valid pair then lone", `{"a":"\ud83d\ude80\ude80"}`, ErrUTF8, 18},

	// Invalid UTF-8.
	{"0xff in string", "{\"a\":\"\xff\"}", ErrUTF8, 6},
	{"0xfe in key", "{\"\xfe\":1}", ErrUTF8, 2},
	{"continuation byte alone", "{\"a\":\"\x80\"}", ErrUTF8, 6},
	{"truncated 2-byte sequence", "{\"a\":\"\xc3\"}", ErrUTF8, 6},
	{"truncated 3-byte sequence", "{\"a\":\"\xe2\x82\"}", ErrUTF8, 6},
	{"truncated 4-byte sequence at end", "{\"a\":\"\xf0\x9f\x98", ErrUTF8, 6},
	{"overlong slash", "{\"a\":\"\xc0\xaf\"}", ErrUTF8, 6},
	{"overlong 3-byte", "{\"a\":\"\xe0\x80\xaf\"}", ErrUTF8, 6},
	{"overlong 4-byte", "{\"a\":\"\xf0\x80\x80\xaf\"}", ErrUTF8, 6},
	{"UTF-8 encoded surrogate", "{\"a\":\"\xed\xa0\x80\"}", ErrUTF8, 6},
	{"above U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}", ErrUTF8, 6},
	{"0xf5 lead byte", "{\"a\":\"\xf5\x80\x80\x80\"}", ErrUTF8, 6},
	{"invalid UTF-8 after long ASCII run", "{\"a\":\"abcdefghijklmnopqrstuvwxyz\xff\"}", ErrUTF8, 32},
	{"invalid UTF-8 between tokens", "{\xff}", ErrUTF8, 1},
	{"invalid UTF-8 at top level", "\xff", ErrUTF8, 0},
	{"Latin-1 text", "{\"a\":\"caf\xe9\"}", ErrUTF8, 9},

	// Duplicate keys.
	{"duplicate id", `{"jsonrpc":"2.0","id":1,"method":"ping","id":2}`, ErrDuplicateKey, 40},
	{"duplicate adjacent", `{"a":1,"a":2}`, ErrDuplicateKey, 7},
	{"duplicate empty key", `{"":1,"":2}`, ErrDuplicateKey, 6},
	{"duplicate via unicode escape", `{"a":1,"\u0061":2}`, ErrDuplicateKey, 7},
	{"duplicate via escape first", `{"\u0061":1,"a":2}`, ErrDuplicateKey, 12},
	{"duplicate both escaped differently", `{"\u006d\u0065thod":1,"m\u0065\u0074hod":2}`, ErrDuplicateKey, 22},
	{"duplicate upper and lower hex", `{"\u00E9":1,"\u00e9":2}`, ErrDuplicateKey, 12},
	{"duplicate escape and raw UTF-8", "{\"\\u00e9\":1,\"\xc3\xa9\":2}", ErrDuplicateKey, 12},
	{"duplicate surrogate pair and raw UTF-8", "{\"\xf0\x9f\x9a\x80\":1,\"\\ud83d\\ude80\":2}", ErrDuplicateKey, 10},
	{"duplicate solidus escape", `{"a/b":1,"a\/b":2}`, ErrDuplicateKey, 9},
	{"duplicate simple escapes", `{"\n":1,"\u000a":2}`, ErrDuplicateKey, 8},
	{"duplicate quote escape", `{"\"":1,"\u0022":2}`, ErrDuplicateKey, 8},
	{"duplicate backslash escape", `{"\\":1,"\u005c":2}`, ErrDuplicateKey, 8},
	{"duplicate NUL key", `{"\u0000":1,"\u0000":2}`, ErrDuplicateKey, 12},
	{"duplicate in nested object", `{"params":{"name":"a","name":"b"}}`, ErrDuplicateKey, 22},
	{"duplicate in object in array", `{"a":[1,{"x":1,"y":2,"x":3}]}`, ErrDuplicateKey, 21},
	{"duplicate after nested object", `{"a":{"b":1,"c":2},"d":3,"a":4}`, ErrDuplicateKey, 25},
	{"duplicate after nested escaped keys", `{"\u0078":{"\u0079":1},"x":2}`, ErrDuplicateKey, 23},
	{"duplicate deep", strings.Repeat(`{"k":`, 10) + `1,"k":2` + strings.Repeat(`}`, 10), ErrDuplicateKey, 52},
	{"duplicate at key 33 (map mode)", manyKeys(33, `"key0"`), ErrDuplicateKey, -1},
	{"duplicate at key 32 (linear mode)", manyKeys(32, `"key31"`), ErrDuplicateKey, -1},
	{"duplicate in map mode via escape", manyKeys(100, `"key\u0035\u0030"`), ErrDuplicateKey, -1},
	{"duplicate of escaped key in map mode", `{"\u0041":0,` + manyKeys(40, `"A"`)[1:], ErrDuplicateKey, -1},
	{"duplicate in map mode after nested big object", `{"x":` + manyKeys(40, "") + `,` + manyKeys(40, `"x"`)[1:], ErrDuplicateKey, -1},

	// Depth.
	{"depth 65", nest(65), ErrDepth, -1},
	{"deep arrays", `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, ErrDepth, 68},
	{"deep empty objects", strings.Repeat(`{"a":`, 64) + `{}` + strings.Repeat("}", 64), ErrDepth, 64 * 5},
}

func TestCheckInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in), Limits{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%.80q) = %v, want *Error of kind %v", tc.in, err, tc.kind)
			}
			if e.Kind != tc.kind || tc.offset >= 0 && e.Offset != tc.offset {
				t.Fatalf("Check(%.80q) = %v (kind %v, offset %d), want kind %v offset %d",
					tc.in, err, e.Kind, e.Offset, tc.kind, tc.offset)
			}
			if e.Offset < 0 || e.Offset > len(tc.in) {
				t.Fatalf("offset %d out of range", e.Offset)
			}
			if json.Valid([]byte(tc.in)) && tc.kind == ErrSyntax {
				t.Errorf("test case is valid JSON but expects a syntax error")
			}
		})
	}
}

func TestCheckDepthLimits(t *testing.T) {
	for _, max := range []int{1, 2, 3, 10, 63, 64, 65, 100, 1000} {
		lim := Limits{MaxDepth: max}
		if err := Check([]byte(nest(max)), lim); err != nil {
			t.Errorf("MaxDepth %d: depth %d rejected: %v", max, max, err)
		}
		err := Check([]byte(nest(max+1)), lim)
		if KindOf(err) != ErrDepth {
			t.Errorf("MaxDepth %d: depth %d: got %v, want ErrDepth", max, max+1, err)
		}
		// Empty containers count too.
		inner := nest(max)
		over := strings.Replace(inner, "1", "[]", 1)
		if KindOf(Check([]byte(over), lim)) != ErrDepth {
			t.Errorf("MaxDepth %d: empty container at depth %d accepted", max, max+1)
		}
	}
	// Zero and negative mean the default.
	for _, max := range []int{0, -1} {
		if err := Check([]byte(nest(DefaultMaxDepth)), Limits{MaxDepth: max}); err != nil {
			t.Errorf("MaxDepth %d: default depth rejected: %v", max, err)
		}
		if KindOf(Check([]byte(nest(DefaultMaxDepth+1)), Limits{MaxDepth: max})) != ErrDepth {
			t.Errorf("MaxDepth %d: default depth+1 accepted", max)
		}
	}
	// Sequential (not nested) containers do not add up.
	seq := `{"a":[` + strings.Repeat(`[[[]]],`, 100) + `1]}`
	if err := Check([]byte(seq), Limits{MaxDepth: 5}); err != nil {
		t.Errorf("sequential containers: %v", err)
	}
	if KindOf(Check([]byte(seq), Limits{MaxDepth: 4})) != ErrDepth {
		t.Errorf("sequential containers at depth 5 accepted with MaxDepth 4")
	}
}

func TestErrorString(t *testing.T) {
	err := Check([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping","id":2}`), Limits{})
	want := `jsonguard: duplicate key "id" at offset 40`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	long := `{"` + strings.Repeat("é", 100) + `":1,"` + strings.Repeat("é", 100) + `":2}`
	msg := Check([]byte(long), Limits{}).Error()
	if !strings.Contains(msg, `..."`) && !strings.Contains(msg, `"...`) || len(msg) > 200 {
		t.Errorf("long duplicate key not truncated: %s", msg)
	}
	for k := ErrSyntax; k <= ErrTooLarge; k++ {
		if strings.HasPrefix(k.String(), "Kind(") {
			t.Errorf("Kind %d has no name", k)
		}
	}
	if Kind(0).String() != "Kind(0)" {
		t.Errorf("Kind(0).String() = %q", Kind(0).String())
	}
	if KindOf(errors.New("x")) != 0 || KindOf(nil) != 0 {
		t.Errorf("KindOf of foreign error is not 0")
	}
	if KindOf(fmt.Errorf("wrapped: %w", err)) != ErrDuplicateKey {
		t.Errorf("KindOf does not unwrap")
	}
}

func TestCheckSize(t *testing.T) {
	if checkSize(MaxInputSize) != nil {
		t.Errorf("MaxInputSize rejected")
	}
	if e := checkSize(MaxInputSize + 1); e == nil || e.Kind != ErrTooLarge {
		t.Errorf("MaxInputSize+1: got %v, want ErrTooLarge", e)
	}
}

func TestCheckNilErrorIsUntypedNil(t *testing.T) {
	if err := Check([]byte(`{}`), Limits{}); err != nil {
		t.Fatalf("got %#v", err)
	}
}

// TestCheckEveryPrefix checks that no proper prefix of a valid message is
// accepted and that cutting never panics.
func TestCheckEveryPrefix(t *testing.T) {
	for _, tc := range validCases {
		in := strings.TrimRight(tc.in, " \t\r\n")
		for n := 0; n < len(in); n++ {
			if Check([]byte(in[:n]), Limits{}) == nil {
				t.Fatalf("%s: prefix %.80q accepted", tc.name, in[:n])
			}
		}
	}
}

func TestCheckAllocs(t *testing.T) {
	inputs := map[string]string{
		"tools/call":   toolsCall,
		"escaped keys": `{"\u006asonrpc":"2.0","\u0069d":1,"m\u0065thod":"x","p":{"\u00e9\u00e9":1,"\ud83d\ude80":[{"\u0041":1}]}}`,
		"depth 64":     nest(64),
		"32 keys":      manyKeys(32, ""),
	}
	for name, in := range inputs {
		data := []byte(in)
		allocs := testing.AllocsPerRun(100, func() {
			if err := Check(data, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Check, want 0", name, allocs)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	data := []byte(toolsCall)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdValid(b *testing.B) {
	data := []byte(toolsCall)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(data) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkCheckLargeObject(b *testing.B) {
	data := []byte(manyKeys(200, ""))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdValidLargeObject(b *testing.B) {
	data := []byte(manyKeys(200, ""))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(data) {
			b.Fatal("invalid")
		}
	}
}
