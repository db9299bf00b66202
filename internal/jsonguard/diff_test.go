package jsonguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// reference is an independent, slow implementation of Check's acceptance
// rule built on encoding/json: valid JSON, valid UTF-8, a top-level object,
// no unpaired surrogate escapes, depth at most maxDepth, and no duplicate
// keys (encoding/json's Decoder returns keys unescaped).
func reference(data []byte, maxDepth int) bool {
	if !json.Valid(data) || !utf8.Valid(data) {
		return false
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return false
	}
	if hasUnpairedSurrogate(data) {
		return false
	}
	type level struct {
		obj       bool
		expectKey bool
		keys      map[string]bool
	}
	var stack []*level
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return false
			}
			top.keys[k] = true
			top.expectKey = false
			continue
		}
		if top != nil && top.obj {
			top.expectKey = true // this token starts the member's value
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= maxDepth {
					return false
				}
				stack = append(stack, &level{obj: d == '{', expectKey: true, keys: map[string]bool{}})
			case ']':
				stack = stack[:len(stack)-1]
			}
		}
	}
}

// hasUnpairedSurrogate scans valid JSON text for \u escapes of unpaired
// UTF-16 surrogates. In valid JSON a backslash only occurs in strings.
func hasUnpairedSurrogate(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if data[i+1] != 'u' {
			i++
			continue
		}
		r, _ := hex4(data, i+2)
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(data) || data[i+6] != '\\' || data[i+7] != 'u' {
				return true
			}
			r2, _ := hex4(data, i+8)
			if r2 < 0xDC00 || r2 > 0xDFFF {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

// gen produces random JSON-ish documents biased towards the corners Check
// cares about: small key alphabets (duplicates), escapes, surrogates,
// non-ASCII, deep nesting and odd whitespace.
type gen struct {
	r    *rand.Rand
	b    []byte
	deep int // while > 0, values are single-member containers (a deep chain)
}

// genMaxLen bounds the size of generated documents: beyond it only scalars
// are produced.
const genMaxLen = 2000

var genKeys = []string{`a`, `b`, `id`, `\u0061`, `\u0069d`, `\ud83d\ude80`, "\U0001F680", `\ud800`, `\n`, `\u000a`, `é`, `\u00e9`, `\u00E9`, ``, `\/`, `/`, `\"`}

var genStrings = []string{``, `x`, `hello world`, `\"\\\/\b\f\n\r\t`, `\u0000\u001f`, `\ud83d\ude80`, `\udc00`, `\ud800\u0041`, `\uD834\uDD1E`,
	"日本語", "\xff", "\xc3", "\xed\xa0\x80", "\x7f", "\t", `\x`, `\u12`, strings.Repeat("abcdefgh", 3), "\xe2\x80\xa8"}

var genNumbers = []string{`0`, `-0`, `1`, `-1`, `12345678901234567890123456789`, `1.5`, `-0.0e+0`, `1e400`, `1E-7`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x1`}

var genSpace = []string{``, ``, ``, ` `, "\n", "\t", "\r\n", "  ", "\f", "\u00a0"}

func (g *gen) ws() {
	if g.r.IntN(4) == 0 {
		g.b = append(g.b, genSpace[g.r.IntN(len(genSpace))]...)
	}
}

func (g *gen) str(pool []string) {
	g.b = append(g.b, '"')
	for n := g.r.IntN(3); n >= 0; n-- {
		g.b = append(g.b, pool[g.r.IntN(len(pool))]...)
		if g.r.IntN(3) > 0 {
			break
		}
	}
	g.b = append(g.b, '"')
}

func (g *gen) value(depth int) {
	g.ws()
	if g.deep > 0 {
		g.deep--
		if g.r.IntN(2) == 0 {
			g.b = append(g.b, `{"k":`...)
			g.value(depth + 1)
			g.b = append(g.b, '}')
		} else {
			g.b = append(g.b, '[')
			g.value(depth + 1)
			g.b = append(g.b, ']')
		}
		return
	}
	k := g.r.IntN(10)
	if len(g.b) > genMaxLen {
		k = 5 + g.r.IntN(5)
	}
	switch {
	case k < 3:
		g.object(depth + 1)
	case k < 5:
		g.b = append(g.b, '[')
		for n, i := g.r.IntN(4), 0; i < n; i++ {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.value(depth + 1)
		}
		g.ws()
		g.b = append(g.b, ']')
	case k < 7:
		g.str(genStrings)
	case k < 9:
		g.b = append(g.b, genNumbers[g.r.IntN(len(genNumbers))]...)
	default:
		g.b = append(g.b, []string{`true`, `false`, `null`}[g.r.IntN(3)]...)
	}
	g.ws()
}

func (g *gen) object(depth int) {
	g.b = append(g.b, '{')
	n := g.r.IntN(5)
	if g.r.IntN(20) == 0 {
		n = 30 + g.r.IntN(10) // around the switch to the hash index
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.ws()
		if n > 5 && g.r.IntN(4) > 0 {
			g.b = append(g.b, '"', 'k', byte('A'+g.r.IntN(40)), '"')
		} else {
			g.str(genKeys)
		}
		g.ws()
		g.b = append(g.b, ':')
		g.value(depth)
	}
	g.ws()
	g.b = append(g.b, '}')
}

// mutate applies a few random byte edits.
func (g *gen) mutate() {
	for n := g.r.IntN(3); n > 0 && len(g.b) > 0; n-- {
		i := g.r.IntN(len(g.b))
		switch g.r.IntN(4) {
		case 0:
			g.b[i] = byte(g.r.IntN(256))
		case 1:
			const special = `{}[]":,\ 0eE.-u`
			g.b[i] = special[g.r.IntN(len(special))]
		case 2:
			g.b = append(g.b[:i], g.b[i+1:]...)
		case 3:
			g.b = append(g.b[:i], append([]byte{g.b[i]}, g.b[i:]...)...)
		}
	}
}

func TestDifferential(t *testing.T) {
	n := 200000
	if testing.Short() {
		n = 20000
	}
	g := &gen{r: rand.New(rand.NewPCG(1, 2))}
	var accepted, rejected int
	for i := 0; i < n; i++ {
		g.b = g.b[:0]
		g.deep = 0
		if g.r.IntN(20) == 0 {
			g.deep = 55 + g.r.IntN(15) // around DefaultMaxDepth
		}
		g.ws()
		if g.r.IntN(10) == 0 {
			g.value(0) // mostly not an object
		} else {
			g.object(1)
		}
		if g.r.IntN(3) == 0 {
			g.mutate()
		}
		maxDepth := DefaultMaxDepth
		if g.r.IntN(4) == 0 {
			maxDepth = 1 + g.r.IntN(4)
		}
		err := Check(g.b, Limits{MaxDepth: maxDepth})
		want := reference(g.b, maxDepth)
		if (err == nil) != want {
			t.Fatalf("Check(%q, MaxDepth %d) = %v, reference accepts: %v", g.b, maxDepth, err, want)
		}
		if err != nil {
			rejected++
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(g.b) || e.Kind < ErrSyntax || e.Kind > ErrTrailing {
				t.Fatalf("Check(%q) returned malformed error %#v", g.b, err)
			}
			if json.Valid(g.b) && e.Kind == ErrSyntax {
				t.Fatalf("Check(%q) = %v, but the input is valid JSON", g.b, err)
			}
		} else {
			accepted++
		}
	}
	t.Logf("%d accepted, %d rejected", accepted, rejected)
	if accepted < n/10 || rejected < n/10 {
		t.Errorf("generator is unbalanced: %d accepted, %d rejected", accepted, rejected)
	}
}

// TestDifferentialSeeds runs the reference over the table inputs too.
func TestDifferentialSeeds(t *testing.T) {
	for _, in := range seedInputs() {
		if (Check(in, Limits{}) == nil) != reference(in, DefaultMaxDepth) {
			t.Errorf("Check and reference disagree on %.100q: %v", in, Check(in, Limits{}))
		}
	}
}

func seedInputs() [][]byte {
	var seeds [][]byte
	for _, tc := range validCases {
		seeds = append(seeds, []byte(tc.in))
	}
	for _, tc := range invalidCases {
		seeds = append(seeds, []byte(tc.in))
	}
	for _, tc := range envelopeCases {
		seeds = append(seeds, []byte(tc.in))
	}
	for _, tc := range messageCases {
		seeds = append(seeds, []byte(tc.in))
	}
	return seeds
}

func FuzzCheck(f *testing.F) {
	for _, s := range seedInputs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data, Limits{})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Offset < 0 || e.Offset > len(data) || e.Kind < ErrSyntax || e.Kind > ErrTrailing {
				t.Fatalf("malformed error %#v", err)
			}
			if json.Valid(data) && e.Kind == ErrSyntax {
				t.Fatalf("valid JSON reported as %v", err)
			}
		}
		if !json.Valid(data) && err == nil {
			t.Fatalf("Check accepted input that json.Valid rejects")
		}
		if ref := reference(data, DefaultMaxDepth); ref != (err == nil) {
			t.Fatalf("Check = %v, reference accepts: %v", err, ref)
		}
		if err != nil {
			_, _ = ParseEnvelope(data) // must not panic
			return
		}

		// Accepted: encoding/json must decode it into map[string]any. The
		// only allowed failure is a number out of float64 range (Check does
		// not range-check numbers); with UseNumber it must always decode.
		var m map[string]any
		if uerr := json.Unmarshal(data, &m); uerr != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(uerr, &te) || !strings.HasPrefix(te.Value, "number") {
				t.Fatalf("json.Unmarshal: %v", uerr)
			}
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		m = nil
		if derr := dec.Decode(&m); derr != nil {
			t.Fatalf("json.Decoder(UseNumber).Decode: %v", derr)
		}
		if _, terr := dec.Token(); terr != io.EOF {
			t.Fatalf("data after the object: %v", terr)
		}

		// ParseEnvelope must agree with encoding/json on the fields it
		// extracts (there are no duplicate keys, so first == last wins).
		env, eerr := ParseEnvelope(data)
		checkEnvelopeAgainstMap(t, env, eerr, m)
	})
}

// checkEnvelopeAgainstMap compares ParseEnvelope's result with a full decode.
func checkEnvelopeAgainstMap(t *testing.T, env Envelope, err error, m map[string]any) {
	t.Helper()
	for _, f := range []string{"jsonrpc", "method"} {
		if v, ok := m[f]; ok {
			if _, isStr := v.(string); !isStr {
				if KindOf(err) != ErrEnvelope {
					t.Fatalf("%q is %T, ParseEnvelope error = %v, want ErrEnvelope", f, v, err)
				}
				return
			}
		}
	}
	if err != nil {
		t.Fatalf("ParseEnvelope: %v", err)
	}
	str := func(v any) string { s, _ := v.(string); return s }
	if env.JSONRPC != str(m["jsonrpc"]) || env.Method != str(m["method"]) {
		t.Fatalf("envelope %+v disagrees with decode %v", env, m)
	}
	_, hasRes := m["result"]
	_, hasErr := m["error"]
	if env.HasResult != hasRes || env.HasError != hasErr {
		t.Fatalf("envelope %+v disagrees with decode %v", env, m)
	}
	if id, ok := m["id"]; ok {
		want, _ := json.Marshal(id)
		var got any
		d := json.NewDecoder(bytes.NewReader(env.ID))
		d.UseNumber()
		if env.ID == nil || d.Decode(&got) != nil {
			t.Fatalf("ID %q does not decode, want %s", env.ID, want)
		}
		if g, _ := json.Marshal(got); !bytes.Equal(g, want) {
			t.Fatalf("ID %q, want %s", env.ID, want)
		}
	} else if env.ID != nil {
		t.Fatalf("ID %q, but there is no id", env.ID)
	}
	var name, uri string
	if p, ok := m["params"].(map[string]any); ok {
		name, uri = str(p["name"]), str(p["uri"])
	}
	if env.ParamsName != name || env.ParamsURI != uri {
		t.Fatalf("params name/uri %q/%q, want %q/%q", env.ParamsName, env.ParamsURI, name, uri)
	}
}
