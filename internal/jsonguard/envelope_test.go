package jsonguard

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var envelopeCases = []struct {
	name string
	in   string
	want Envelope
	kind Kind // expected error kind, 0 for none
}{
	{
		name: "tools/call",
		in:   toolsCall,
		want: Envelope{JSONRPC: "2.0", Method: "tools/call", ID: []byte("42"), ParamsName: "search_issues"},
	},
	{
		name: "ping without params",
		in:   `{"jsonrpc":"2.0","id":"abc","method":"ping"}`,
		want: Envelope{JSONRPC: "2.0", Method: "ping", ID: []byte(`"abc"`)},
	},
	{
		name: "notification has no id",
		in:   `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		want: Envelope{JSONRPC: "2.0", Method: "notifications/initialized"},
	},
	{
		name: "null id",
		in:   `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		want: Envelope{JSONRPC: "2.0", Method: "ping", ID: []byte("null")},
	},
	{
		name: "id with escapes stays raw",
		in:   `{"id":"a\"b\u0063","method":"ping"}`,
		want: Envelope{Method: "ping", ID: []byte(`"a\"b\u0063"`)},
	},
	{
		name: "negative fractional id",
		in:   `{"id":-1.5e3,"method":"ping"}`,
		want: Envelope{Method: "ping", ID: []byte(`-1.5e3`)},
	},
	{
		name: "resources/read uri",
		in:   `{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///etc/hosts"}}`,
		want: Envelope{JSONRPC: "2.0", Method: "resources/read", ID: []byte("2"), ParamsURI: "file:///etc/hosts"},
	},
	{
		name: "method after params",
		in:   `{"params":{"arguments":{"name":"inner","uri":"inner"},"name":"outer"},"id":1,"method":"prompts/get","jsonrpc":"2.0"}`,
		want: Envelope{JSONRPC: "2.0", Method: "prompts/get", ID: []byte("1"), ParamsName: "outer"},
	},
	{
		name: "nested name is not params.name",
		in:   `{"method":"tools/call","params":{"arguments":{"name":"x"},"_meta":{"name":"y"}}}`,
		want: Envelope{Method: "tools/call"},
	},
	{
		name: "top-level name is not params.name",
		in:   `{"method":"tools/call","name":"x","uri":"y","params":{}}`,
		want: Envelope{Method: "tools/call"},
	},
	{
		name: "escaped keys",
		in:   `{"\u006asonrpc":"2.0","\u0069\u0064":7,"m\u0065thod":"tools/call","par\u0061ms":{"n\u0061me":"t","\u0075ri":"u"}}`,
		want: Envelope{JSONRPC: "2.0", Method: "tools/call", ID: []byte("7"), ParamsName: "t", ParamsURI: "u"},
	},
	{
		name: "escaped values",
		in:   `{"jsonrpc":"2\u002e0","method":"tools\/call","params":{"name":"caf\u00e9 \ud83d\ude80\n","uri":"a\"b"}}`,
		want: Envelope{JSONRPC: "2.0", Method: "tools/call", ParamsName: "café 🚀\n", ParamsURI: `a"b`},
	},
	{
		name: "long escaped name",
		in:   `{"method":"tools/call","params":{"name":"` + strings.Repeat(`\u0041`, 100) + `"}}`,
		want: Envelope{Method: "tools/call", ParamsName: strings.Repeat("A", 100)},
	},
	{
		name: "unknown method",
		in:   `{"method":"x/custom-method","params":{"name":"n"}}`,
		want: Envelope{Method: "x/custom-method", ParamsName: "n"},
	},
	{
		name: "result response",
		in:   `{"jsonrpc":"2.0","id":3,"result":{"method":"not me","content":[{"type":"text","text":"}]\"{["}]}}`,
		want: Envelope{JSONRPC: "2.0", ID: []byte("3"), HasResult: true},
	},
	{
		name: "null result",
		in:   `{"jsonrpc":"2.0","id":3,"result":null}`,
		want: Envelope{JSONRPC: "2.0", ID: []byte("3"), HasResult: true},
	},
	{
		name: "error response",
		in:   `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found"}}`,
		want: Envelope{JSONRPC: "2.0", ID: []byte("3"), HasError: true},
	},
	{
		name: "by-position params",
		in:   `{"method":"m","params":["name","uri",{"name":"x"}]}`,
		want: Envelope{Method: "m"},
	},
	{
		name: "null params",
		in:   `{"method":"m","params":null}`,
		want: Envelope{Method: "m"},
	},
	{
		name: "non-string params.name is ignored",
		in:   `{"method":"tools/call","params":{"name":5,"uri":{"a":"b"}}}`,
		want: Envelope{Method: "tools/call"},
	},
	{
		name: "whitespace everywhere",
		in:   " {\n \"id\" : 1 ,\t\"method\"\r\n:\"ping\" , \"params\" : { \"name\" : \"n\" } } ",
		want: Envelope{Method: "ping", ID: []byte("1"), ParamsName: "n"},
	},
	{
		name: "empty object",
		in:   `{}`,
		want: Envelope{},
	},
	{
		name: "scalars before fields",
		in:   `{"a":1,"b":true,"c":null,"d":-0.5e-3,"e":"s","f":[],"g":{},"method":"ping"}`,
		want: Envelope{Method: "ping"},
	},
	{name: "non-string method", in: `{"method":1}`, kind: ErrEnvelope},
	{name: "null method", in: `{"method":null}`, kind: ErrEnvelope},
	{name: "non-string jsonrpc", in: `{"jsonrpc":2.0}`, kind: ErrEnvelope},
	{name: "duplicate method", in: `{"method":"a","method":"b"}`, kind: ErrDuplicateKey},
	{name: "duplicate escaped method", in: `{"method":"a","\u006dethod":"b"}`, kind: ErrDuplicateKey},
	{name: "duplicate params name", in: `{"params":{"name":"a","na\u006de":"b"}}`, kind: ErrDuplicateKey},
	{name: "batch", in: `[{"method":"ping"}]`, kind: ErrBatch},
	{name: "not an object", in: `"method"`, kind: ErrNotObject},
	{name: "empty", in: ``, kind: ErrSyntax},
	{name: "truncated", in: `{"method":"pi`, kind: ErrSyntax},
	{name: "truncated in params", in: `{"method":"ping","params":{"name":"x"`, kind: ErrSyntax},
	{name: "missing colon", in: `{"method" "ping"}`, kind: ErrSyntax},
	{name: "missing value", in: `{"method":}`, kind: ErrSyntax},
	{name: "bad escape in method", in: `{"method":"\ud800"}`, kind: ErrSyntax},
}

func TestParseEnvelope(t *testing.T) {
	for _, tc := range envelopeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvelope([]byte(tc.in))
			if tc.kind != 0 {
				if KindOf(err) != tc.kind {
					t.Fatalf("ParseEnvelope(%.80q) = %+v, %v; want error of kind %v", tc.in, got, err, tc.kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnvelope(%.80q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseEnvelope(%.80q)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
			// Cross-check against a full decode when Check accepts.
			if Check([]byte(tc.in), Limits{}) == nil {
				var m map[string]any
				d := json.NewDecoder(bytes.NewReader([]byte(tc.in)))
				d.UseNumber()
				if err := d.Decode(&m); err != nil {
					t.Fatal(err)
				}
				checkEnvelopeAgainstMap(t, got, err, m)
			}
		})
	}
}

func TestEnvelopeName(t *testing.T) {
	cases := []struct {
		method   string
		want     string
		wantUsed bool
	}{
		{"tools/call", "N", true},
		{"prompts/get", "N", true},
		{"resources/read", "U", true},
		{"resources/subscribe", "U", true},
		{"resources/unsubscribe", "U", true},
		{"tools/list", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		e := Envelope{Method: c.method, ParamsName: "N", ParamsURI: "U"}
		if got, used := e.Name(); got != c.want || used != c.wantUsed {
			t.Errorf("Name() for %q = %q, %v; want %q, %v", c.method, got, used, c.want, c.wantUsed)
		}
	}
}

func TestParseEnvelopeIDAliasesInput(t *testing.T) {
	data := []byte(`{"id":12345,"method":"ping"}`)
	env, err := ParseEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	if &env.ID[0] != &data[6] {
		t.Errorf("ID does not alias the input")
	}
	if cap(env.ID) != len(env.ID) {
		t.Errorf("ID has spare capacity %d; appending to it would overwrite the input", cap(env.ID)-len(env.ID))
	}
}

func TestParseEnvelopeAllocs(t *testing.T) {
	cases := []struct {
		in   string
		max  float64
		name string
	}{
		{toolsCall, 1, "tools/call: only ParamsName allocates"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, 0, "known method"},
		{`{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`, 0, "response"},
	}
	for _, c := range cases {
		data := []byte(c.in)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseEnvelope(data); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, allocs, c.max)
		}
	}
}

// TestParseEnvelopeNoPanicOnPrefixes feeds every prefix and many one-byte
// corruptions of the test inputs.
func TestParseEnvelopeNoPanicOnPrefixes(t *testing.T) {
	for _, in := range seedInputs() {
		for n := 0; n <= len(in); n++ {
			_, _ = ParseEnvelope(in[:n])
		}
		buf := make([]byte, len(in))
		for i := range in {
			for _, c := range []byte(`{}[]":,\ x`) {
				copy(buf, in)
				buf[i] = c
				_, _ = ParseEnvelope(buf)
			}
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, s := range seedInputs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			if KindOf(err) == 0 {
				t.Fatalf("error is not an *Error: %v", err)
			}
			return
		}
		if env.ID != nil && (len(env.ID) == 0 || !bytes.Contains(data, env.ID)) {
			t.Fatalf("ID %q is not part of the input", env.ID)
		}
		if Check(data, Limits{}) == nil {
			var m map[string]any
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			if derr := d.Decode(&m); derr != nil {
				t.Fatal(derr)
			}
			checkEnvelopeAgainstMap(t, env, err, m)
		}
	})
}

func BenchmarkParseEnvelope(b *testing.B) {
	data := []byte(toolsCall)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckAndParseEnvelope(b *testing.B) {
	data := []byte(toolsCall)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(data, Limits{}); err != nil {
			b.Fatal(err)
		}
		if _, err := ParseEnvelope(data); err != nil {
			b.Fatal(err)
		}
	}
}
