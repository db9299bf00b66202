package latticesvc

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mcpedge/mcpedge/internal/lattice"
)

// decodeSeeds are request bodies for the decoders: valid create, path and
// transform requests, and near misses.
var decodeSeeds = []string{
	``,
	`null`,
	`{}`,
	` {"dims":[4,4]} `,
	`{"name":"maze","dims":[50,50,50],"boundary":"periodic","blocked":[[0,0,1],[1,2,3]]}`,
	`{"name":"r","dims":[8,8],"boundary":"open","blocked":{"cells":[[1,1]],"random":{"density":0.2,"seed":7}}}`,
	`{"dims":[8],"blocked":{"random":{"density":1,"seed":18446744073709551615}}}`,
	`{"dims":[8],"blocked":{"random":{"density":-0}}}`,
	`{"dims":[8],"blocked":{"random":{"density":1.0000000000000002}}}`,
	`{"dims":[8],"blocked":{"random":{"density":"0.5"}}}`,
	`{"dims":[8],"blocked":{"random":{"density":0.5,"seed":-1}}}`,
	`{"dims":[8],"blocked":{"random":{"density":0.5,"seed":1e3}}}`,
	`{"dims":[8],"blocked":{"random":{}}}`,
	`{"dims":[8],"blocked":{"cells":[],"extra":1}}`,
	`{"dims":[8],"blocked":"all"}`,
	`{"dims":[1e3,1.0,2E0]}`,
	`{"dims":[1.5]}`,
	`{"dims":[0]}`,
	`{"dims":[-1]}`,
	`{"dims":[9223372036854775807,9223372036854775807]}`,
	`{"dims":[9223372036854775808]}`,
	`{"dims":[1e19]}`,
	`{"dims":[1e400]}`,
	`{"dims":[]}`,
	`{"dims":[` + strings.Repeat("1,", lattice.MaxDims) + `1]}`,
	`{"dims":"4x4"}`,
	`{"dims":[4,4],"boundary":"torus"}`,
	`{"dims":[4,4],"boundary":null,"blocked":null,"name":null}`,
	`{"dims":[4,4],"name":"` + strings.Repeat("é", 70) + `"}`,
	`{"dims":[4,4],"name":"a\u0000b"}`,
	`{"dims":[4,4],"name":"a\nb"}`,
	`{"dims":[4,4],"blocked":[[1,1],[2,2],[3,3],[0,0],[1,2]]}`,
	`{"dims":[4,4],"blocked":[[]]}`,
	`{"dims":[4,4],"blocked":[[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]]}`,
	`{"dims":[4,4]} {}`,
	`{"dims":[4,4]}]`,
	`{"dims":[4,4],"dims":[5]}`,
	`{"` + strings.Repeat("ü", 40) + `":1,"b":2}`,
	`[1,2]`,
	`"x"`,
	`{"dims":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	`{"lattice_id":"lat_0123456789abcdef"}`,
	`{"lattice_id":"lat_0123456789abcdef","dims":[4]}`,
	`{"lattice_id":7}`,
	`{"lattice_id":"lat_0123456789abcdef","from":[0,0],"to":[3,3]}`,
	`{"dims":[4,4],"from":[0,0],"to":[3,3],"catalytic":true,"algorithm":"astar","length_only":false}`,
	`{"from":[0,0],"to":[3,3],"algorithm":"bfs-bidirectional"}`,
	`{"from":[0,0],"to":[3,3],"algorithm":"dijkstra"}`,
	`{"from":[0,0],"to":[3,3],"catalytic":"yes"}`,
	`{"from":[0,0]}`,
	`{"from":[],"to":[1]}`,
	`{"from":[0.5],"to":[1]}`,
	`{"from":[-9223372036854775808],"to":[9223372036854775807]}`,
	`{"points":[[0,0],[1,2]],"transform":{"kind":"rotate","plane":[0,1],"quarter_turns":3}}`,
	`{"dims":[4,4],"points":[[0,0]],"transform":{"kind":"reflect","axis":1}}`,
	`{"points":[[0,0]],"transform":{"kind":"translate","offset":[1,-1]}}`,
	`{"points":[[0,0]],"transform":{"kind":"permute","order":[1,0]}}`,
	`{"points":[[0,0]],"transform":{"kind":"permute","order":[32,0]}}`,
	`{"points":[[0,0]],"transform":{"kind":"xor","mask":[1,3]}}`,
	`{"points":[[0,0]],"transform":{"kind":"compose","steps":[{"kind":"reflect","axis":0},{"kind":"xor","mask":[1,1]}]}}`,
	`{"points":[[0,0]],"transform":{"kind":"compose","steps":[{"kind":"compose","steps":[{"kind":"reflect","axis":0}]}]}}`,
	`{"points":[[0,0]],"transform":{"kind":"compose","steps":[]}}`,
	`{"points":[[0,0]],"transform":{"kind":"rotate","plane":[0]}}`,
	`{"points":[[0,0]],"transform":{"kind":"rotate","plane":[0,1],"quarter_turns":2147483648}}`,
	`{"points":[[0,0]],"transform":{"kind":"reflect","axis":0,"plane":[0,1]}}`,
	`{"points":[[0,0]],"transform":{"kind":"shear"}}`,
	`{"points":[[0,0]],"transform":{}}`,
	`{"points":[[0,0]],"transform":[]}`,
	`{"points":[[0,0],[0,0],[0,0],[0,0],[0,0],[0,0],[0,0],[0,0],[0,0]],"transform":{"kind":"reflect","axis":0}}`,
	`{"points":[],"transform":{"kind":"reflect","axis":0}}`,
}

// fuzzLimits are the decoding limits of one fuzz input: small, so that
// the fuzzer reaches them.
func fuzzLimits(cells, pathPoints uint8) Limits {
	l := DefaultLimits()
	l.MaxInlineBlockedCells = int(cells % 6) // 0: explicit cells refused
	l.MaxPathPoints = int(pathPoints%8) + 1  // 0 would mean the default
	l.MaxPoints = 1 << 20
	return l
}

// checkDecodeErr checks a decoder's refusal: a *Error with a known code
// and a 4xx status, whose message is non-empty, valid UTF-8 and short
// (it never echoes a large input).
func checkDecodeErr(t *testing.T, what string, raw []byte, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s(%q): error %T %v, want a *Error", what, raw, err, err)
	}
	st, known := codeStatus[e.Code]
	if !known || e.Status != st || e.Status < 400 || e.Status >= 500 {
		t.Fatalf("%s(%q): code %q status %d", what, raw, e.Code, e.Status)
	}
	if e.Message == "" || !utf8.ValidString(e.Message) || len(e.Message) > 1024 {
		t.Fatalf("%s(%q): message %q", what, raw, e.Message)
	}
}

func checkPoint(t *testing.T, what string, p []int64) {
	t.Helper()
	if len(p) < 1 || len(p) > lattice.MaxDims {
		t.Fatalf("%s: accepted point %v with %d coordinates", what, p, len(p))
	}
}

func checkDef(t *testing.T, raw []byte, d Def, lim Limits) {
	t.Helper()
	if len(d.Dims) < 1 || len(d.Dims) > lattice.MaxDims {
		t.Fatalf("%q: accepted %d axes", raw, len(d.Dims))
	}
	for _, n := range d.Dims {
		if n < 1 {
			t.Fatalf("%q: accepted axis length %d", raw, n)
		}
	}
	if len(d.Cells) > lim.MaxInlineBlockedCells {
		t.Fatalf("%q: accepted %d blocked cells, limit %d", raw, len(d.Cells), lim.MaxInlineBlockedCells)
	}
	for _, c := range d.Cells {
		checkPoint(t, string(raw), c)
	}
	if r := d.Random; r != nil && !(r.Density >= 0 && r.Density <= 1) {
		t.Fatalf("%q: accepted density %v", raw, r.Density)
	}
}

// canonicalDef is d with an empty cell list as none, as the store keeps it.
func canonicalDef(d Def) Def {
	if len(d.Cells) == 0 {
		d.Cells = nil
	}
	return d
}

// FuzzDecodeCreate decodes arbitrary bodies as create requests (and as
// stored definitions) under small fuzzed limits. Refusals are *Error
// with a 4xx code; an accepted definition respects the limits and, stored
// (encodeSpec) and read back (decodeSpec), is the same definition.
func FuzzDecodeCreate(f *testing.F) {
	for i, s := range decodeSeeds {
		f.Add([]byte(s), uint8(i%3+1), uint8(i%5))
	}
	f.Add([]byte(`{"dims":[4,4],"blocked":[[1,1]]}`), uint8(0), uint8(0))
	svc := New(Options{})

	f.Fuzz(func(t *testing.T, raw []byte, cells, pathPoints uint8) {
		lim := fuzzLimits(cells, pathPoints)
		svc.SetLimits(lim)
		lim = svc.Limits()

		if _, _, err := decodeSpec(raw); err != nil && err.Error() == "" {
			t.Fatalf("decodeSpec(%q): empty error", raw)
		}

		name, d, err := svc.decodeCreate(raw)
		if err != nil {
			checkDecodeErr(t, "decodeCreate", raw, err)
			return
		}
		if len(name) > maxNameLen || strings.ContainsFunc(name, unicode.IsControl) {
			t.Fatalf("decodeCreate(%q): accepted name %q", raw, name)
		}
		checkDef(t, raw, d, lim)
		if _, ok := d.points(); !ok {
			return // refused by Create, not by decoding; the store never sees it
		}
		b, err := encodeSpec(d, nil)
		if err != nil {
			t.Fatalf("encodeSpec(%+v): %v", d, err)
		}
		back, _, err := decodeSpec(b)
		if err != nil {
			t.Fatalf("decodeSpec(encodeSpec(%q) = %s): %v", raw, b, err)
		}
		if !reflect.DeepEqual(canonicalDef(back), canonicalDef(d)) {
			t.Fatalf("%q: stored as %s, read back as %+v, want %+v", raw, b, back, d)
		}
	})
}

// FuzzDecodeRequest decodes arbitrary bodies as path, transform, id and
// empty requests, with the lattice inline (MCP tools) and from the URL
// (REST). Refusals are *Error with a 4xx code; accepted requests respect
// the limits and never name the lattice both by id and inline.
func FuzzDecodeRequest(f *testing.F) {
	for i, s := range decodeSeeds {
		f.Add([]byte(s), uint8(i%3+1), uint8(i%5))
	}
	svc := New(Options{})

	f.Fuzz(func(t *testing.T, raw []byte, cells, pathPoints uint8) {
		lim := fuzzLimits(cells, pathPoints)
		svc.SetLimits(lim)
		lim = svc.Limits()

		checkTarget := func(what string, tg Target, inline bool) {
			t.Helper()
			switch {
			case !inline && (tg.ID != "" || tg.Def != nil):
				t.Fatalf("%s(%q): a target %+v without inline lattices", what, raw, tg)
			case tg.ID != "" && tg.Def != nil:
				t.Fatalf("%s(%q): target %+v names the lattice twice", what, raw, tg)
			case tg.Def != nil:
				checkDef(t, raw, *tg.Def, lim)
			}
		}

		for _, inline := range []bool{false, true} {
			tg, r, err := svc.decodePath(raw, inline)
			if err != nil {
				checkDecodeErr(t, "decodePath", raw, err)
			} else {
				checkTarget("decodePath", tg, inline)
				checkPoint(t, "decodePath from", r.From)
				checkPoint(t, "decodePath to", r.To)
				if r.Algorithm != "" && !slices.Contains(algorithms, r.Algorithm) {
					t.Fatalf("decodePath(%q): algorithm %q", raw, r.Algorithm)
				}
			}

			tg, pts, ts, err := svc.decodeTransform(raw, inline)
			if err != nil {
				checkDecodeErr(t, "decodeTransform", raw, err)
			} else {
				checkTarget("decodeTransform", tg, inline)
				if len(pts) > lim.MaxPathPoints {
					t.Fatalf("decodeTransform(%q): %d points, limit %d", raw, len(pts), lim.MaxPathPoints)
				}
				for _, p := range pts {
					checkPoint(t, "decodeTransform", p)
				}
				checkTransform(t, raw, ts, false)
			}
		}

		if id, err := decodeID(raw); err != nil {
			checkDecodeErr(t, "decodeID", raw, err)
		} else if !strings.Contains(string(raw), "lattice_id") && !strings.Contains(string(raw), `\u`) {
			t.Fatalf("decodeID(%q) = %q without a lattice_id", raw, id)
		}
		if err := decodeEmpty(raw); err != nil {
			checkDecodeErr(t, "decodeEmpty", raw, err)
		}
	})
}

func checkTransform(t *testing.T, raw []byte, ts TransformSpec, nested bool) {
	t.Helper()
	if _, ok := transformKeys[ts.Kind]; !ok || (nested && ts.Kind == "compose") {
		t.Fatalf("decodeTransform(%q): kind %q (nested %v)", raw, ts.Kind, nested)
	}
	for _, l := range [][]int64{ts.Offset, ts.Mask} {
		if l != nil && (len(l) < 1 || len(l) > lattice.MaxDims) {
			t.Fatalf("decodeTransform(%q): list of %d entries", raw, len(l))
		}
	}
	for _, a := range ts.Order {
		if a < 0 || a >= lattice.MaxDims {
			t.Fatalf("decodeTransform(%q): order names axis %d", raw, a)
		}
	}
	if ts.Kind == "compose" && (len(ts.Steps) < 1 || len(ts.Steps) > maxComposeSteps) {
		t.Fatalf("decodeTransform(%q): %d compose steps", raw, len(ts.Steps))
	}
	for _, st := range ts.Steps {
		checkTransform(t, raw, st, true)
	}
}
