package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// The TOML and JSON front ends both turn their input into a tree of *val
// that remembers where every key and value came from. Interpreting that tree
// (typed getters, unknown keys, env expansion, validation) is then shared,
// and every problem can point at a line and column.

type pos struct{ line, col int }

type kind int

const (
	kNull kind = iota
	kString
	kInt
	kFloat
	kBool
	kDatetime
	kArray
	kTable
)

type val struct {
	kind kind
	pos  pos
	str  string
	i    int64
	f    float64 // kFloat only
	b    bool
	arr  []*val
	// Tables: keys in document order, their values and the position of
	// each key.
	keys   []string
	fields map[string]*val
	keyPos map[string]pos
}

func newTable(p pos) *val {
	return &val{kind: kTable, pos: p, fields: map[string]*val{}, keyPos: map[string]pos{}}
}

// set adds or replaces key. Keys are kept in the order first seen.
func (t *val) set(key string, kp pos, v *val) {
	if _, ok := t.fields[key]; !ok {
		t.keys = append(t.keys, key)
		t.keyPos[key] = kp
	}
	t.fields[key] = v
}

// sortKeysByPos orders keys by their position in the file, so problems and
// upstreams come out in file order even when the front end (a Go map) lost
// it.
func (t *val) sortKeysByPos() {
	sort.SliceStable(t.keys, func(i, j int) bool {
		a, b := t.keyPos[t.keys[i]], t.keyPos[t.keys[j]]
		if a.line != b.line {
			return a.line < b.line
		}
		if a.col != b.col {
			return a.col < b.col
		}
		return t.keys[i] < t.keys[j]
	})
}

// lineIndex converts byte offsets to 1-based line and column numbers.
// Columns count bytes, as most editors' "go to line:col" tolerate.
type lineIndex []int // offsets of line starts

func newLineIndex(data []byte) lineIndex {
	li := lineIndex{0}
	for i, c := range data {
		if c == '\n' {
			li = append(li, i+1)
		}
	}
	return li
}

func (li lineIndex) pos(off int) pos {
	if off < 0 {
		return pos{}
	}
	// Index of the last line start <= off.
	n := sort.Search(len(li), func(i int) bool { return li[i] > off }) - 1
	if n < 0 {
		n = 0
	}
	return pos{line: n + 1, col: off - li[n] + 1}
}

// decoder accumulates problems while a tree is interpreted.
type decoder struct {
	file   string
	json   bool // JSON vocabulary in messages ("object" rather than "table")
	lookup func(string) (string, bool)
	probs  Problems
	// base is the directory relative file paths are resolved against for
	// checks that need the file system (wasm modules and sandbox dirs);
	// "" skips them (Parse has no file system context).
	base string
	// ownEnv maps the environment variables the gateway's settings name
	// for its own secrets to the setting ("server.auth_token_env"…); no
	// upstream may inherit them. Set by validate.
	ownEnv map[string]string
	// client holds the variables of a client file (clients.go); nil for
	// TOML.
	client *clientVars
	// raw, when set, receives the text of every expanded setting, by
	// field, with client-only references made portable: what an imported
	// configuration writes (ImportClientFile).
	raw map[string]string
}

func (d *decoder) add(p pos, field, format string, args ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Line: p.line, Col: p.col, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) kindName(k kind) string {
	switch k {
	case kNull:
		return "null"
	case kString:
		return "string"
	case kInt:
		if d.json {
			return "number"
		}
		return "integer"
	case kFloat:
		if d.json {
			return "number"
		}
		return "float"
	case kBool:
		return "boolean"
	case kDatetime:
		return "date-time"
	case kArray:
		return "array"
	case kTable:
		if d.json {
			return "object"
		}
		return "table"
	}
	return "value"
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinField appends key to a field path: a.b for plain keys, a["x y"]
// otherwise, so the path stays unambiguous for any key.
func joinField(base, key string) string {
	if bareKey.MatchString(key) {
		if base == "" {
			return key
		}
		return base + "." + key
	}
	return base + "[" + strconv.Quote(key) + "]"
}

func indexField(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

// loc is where a setting lives, for problems found after decoding.
type loc struct {
	field string
	pos   pos
}

// table reads typed fields from a table value, remembering which keys were
// consumed so the leftovers can be reported as unknown.
type table struct {
	d     *decoder
	v     *val
	field string
	used  map[string]bool
	// bad records keys whose value could not be decoded (already
	// reported), so validation does not pile up follow-on problems.
	bad map[string]bool
}

func (d *decoder) table(v *val, field string) *table {
	return &table{d: d, v: v, field: field, used: map[string]bool{}, bad: map[string]bool{}}
}

// get returns the value of key or nil, and marks key as known.
func (t *table) get(key string) *val {
	t.used[key] = true
	return t.v.fields[key]
}

// loc returns the location of key if present, else of the table itself.
func (t *table) loc(key string) loc {
	f := joinField(t.field, key)
	if p, ok := t.v.keyPos[key]; ok {
		return loc{f, p}
	}
	return loc{f, t.v.pos}
}

func (t *table) typeErr(key string, v *val, want string) {
	t.bad[key] = true
	l := t.loc(key)
	t.d.add(l.pos, l.field, "expected %s, got %s", want, t.d.kindName(v.kind))
}

func (t *table) str(key string, dst *string) bool {
	v := t.get(key)
	if v == nil {
		return false
	}
	if v.kind != kString {
		t.typeErr(key, v, "string")
		return false
	}
	*dst = v.str
	return true
}

func (t *table) boolean(key string, dst *bool) bool {
	v := t.get(key)
	if v == nil {
		return false
	}
	if v.kind != kBool {
		t.typeErr(key, v, "boolean (true or false)")
		return false
	}
	*dst = v.b
	return true
}

func (t *table) integer(key string, dst *int64) bool {
	v := t.get(key)
	if v == nil {
		return false
	}
	if v.kind != kInt {
		t.typeErr(key, v, "integer")
		return false
	}
	*dst = v.i
	return true
}

func (t *table) duration(key string, dst *Duration) bool {
	v := t.get(key)
	if v == nil {
		return false
	}
	if v.kind != kString {
		t.bad[key] = true
		l := t.loc(key)
		if v.kind == kInt {
			t.d.add(l.pos, l.field, "expected a duration string with a unit, e.g. \"%ds\", got integer", v.i)
		} else {
			t.typeErr(key, v, "duration string such as \"30s\"")
		}
		return false
	}
	dur, err := parseDuration(v.str)
	if err != nil {
		t.bad[key] = true
		l := t.loc(key)
		t.d.add(l.pos, l.field, "%s", err)
		return false
	}
	*dst = dur
	return true
}

func (t *table) strList(key string, dst *[]string) bool {
	v := t.get(key)
	if v == nil {
		return false
	}
	if v.kind != kArray {
		t.typeErr(key, v, "array of strings")
		return false
	}
	out := make([]string, 0, len(v.arr))
	ok := true
	for i, e := range v.arr {
		if e.kind != kString {
			p := e.pos
			if p.line == 0 {
				p = t.loc(key).pos
			}
			t.d.add(p, indexField(t.loc(key).field, i), "expected string, got %s", t.d.kindName(e.kind))
			t.bad[key] = true
			ok = false
			continue
		}
		out = append(out, e.str)
	}
	if ok {
		*dst = out
	}
	return ok
}

// strMap reads a table of strings. When expand is set, values have
// ${VAR} references expanded; unset variables are reported unless
// tolerateUnset (used for disabled upstreams, which will not run). The
// returned flag says whether some variable was unset.
func (t *table) strMap(key string, dst *map[string]string, expand, tolerateUnset bool) (present, unset bool) {
	v := t.get(key)
	if v == nil {
		return false, false
	}
	if v.kind != kTable {
		t.typeErr(key, v, t.d.kindName(kTable)+" of strings")
		return true, false
	}
	out := make(map[string]string, len(v.keys))
	base := t.loc(key).field
	for _, k := range v.keys {
		e := v.fields[k]
		f := joinField(base, k)
		p := v.keyPos[k]
		if e.kind != kString {
			t.d.add(p, f, "expected string, got %s", t.d.kindName(e.kind))
			continue
		}
		s := e.str
		if expand {
			var u bool
			s, u = t.d.expand(s, p, f, tolerateUnset)
			unset = unset || u
		}
		out[k] = s
	}
	*dst = out
	return true, unset
}

// unknown reports every key of the table that no getter asked for.
func (t *table) unknown(known []string) {
	for _, k := range t.v.keys {
		if t.used[k] {
			continue
		}
		l := t.loc(k)
		msg := fmt.Sprintf("unknown key %q", k)
		if s := suggest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		t.d.add(l.pos, l.field, "%s", msg)
	}
}

// suggest returns the known key closest to k, if it is close enough to be a
// plausible typo.
func suggest(k string, known []string) string {
	if len(k) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
