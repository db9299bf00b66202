package latticesvc

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/mcpedge/mcpedge/internal/lattice"
)

// The MCP tools and the REST API take the same JSON shapes. They are decoded
// by hand rather than with encoding/json into structs so that every mistake
// gets a message naming the field and what was expected ("dims[1] is 0:
// every axis length must be ≥ 1"), and so that limits are checked before
// large lists are converted.

// maxNameLen bounds a lattice's name.
const maxNameLen = 128

// maxComposeSteps bounds the steps of a compose transform.
const maxComposeSteps = 16

// object is a decoded JSON object with the path it was found at.
type object struct {
	m    map[string]any
	path string
}

// parseObject decodes raw (a JSON object; empty or null counts as {}).
func parseObject(raw []byte) (*object, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &object{m: map[string]any{}}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errorf(CodeInvalidJSON, "arguments are not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, errorf(CodeInvalidJSON, "arguments must be one JSON object, found more data after it")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(CodeInvalidArgument, "arguments must be a JSON object, got %s", typeName(v))
	}
	return &object{m: m}, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a value"
}

func join(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

func index(base string, i int) string { return base + "[" + strconv.Itoa(i) + "]" }

func (o *object) field(k string) string { return join(o.path, k) }

// only reports the first key (in sorted order) that is not allowed.
func (o *object) only(allowed ...string) error {
	var unknown []string
	for k := range o.m {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	first := unknown[0]
	for _, k := range unknown[1:] {
		first = min(first, k)
	}
	where := "arguments"
	if o.path != "" {
		where = o.path
	}
	return errorf(CodeInvalidArgument, "unknown field %q in %s (expected %s)", truncate(first, 64), where, strings.Join(allowed, ", "))
}

// get returns the value of k; absent and null both count as not given.
func (o *object) get(k string) (any, bool) {
	v, ok := o.m[k]
	return v, ok && v != nil
}

func (o *object) str(k string) (string, bool, error) {
	v, ok := o.get(k)
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, errorf(CodeInvalidArgument, "%s must be a string, got %s", o.field(k), typeName(v))
	}
	return s, true, nil
}

func (o *object) boolean(k string) (bool, error) {
	v, ok := o.get(k)
	if !ok {
		return false, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, errorf(CodeInvalidArgument, "%s must be true or false, got %s", o.field(k), typeName(v))
	}
	return b, nil
}

// toInt converts a JSON number that is an integer (1, 1.0, 1e3) to int64.
func toInt(v any, path string) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, errorf(CodeInvalidArgument, "%s must be an integer, got %s", path, typeName(v))
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(f, 0) || f != math.Trunc(f) || f >= math.MaxInt64 || f < math.MinInt64 {
		return 0, errorf(CodeInvalidArgument, "%s must be an integer (64-bit), got %s", path, truncate(n.String(), 40))
	}
	return int64(f), nil
}

// array returns v as a JSON array.
func array(v any, path, what string) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		return nil, errorf(CodeInvalidArgument, "%s must be %s, got %s", path, what, typeName(v))
	}
	return a, nil
}

// point decodes a point: an array of 1 to 32 integers. Bounds are the
// engine's to check (its message names the axis and its length).
func point(v any, path string) ([]int64, error) {
	a, err := array(v, path, "an array of integer coordinates such as [0, 0, 0]")
	if err != nil {
		return nil, err
	}
	if len(a) == 0 || len(a) > lattice.MaxDims {
		return nil, errorf(CodeInvalidArgument, "%s must have 1 to %d coordinates, got %d", path, lattice.MaxDims, len(a))
	}
	p := make([]int64, len(a))
	for i, e := range a {
		if p[i], err = toInt(e, index(path, i)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// points decodes a list of at most limit points; over the limit is code.
func points(v any, path string, limit int, code, limitName, noun string) ([][]int64, error) {
	a, err := array(v, path, "an array of points such as [[0, 0], [1, 2]]")
	if err != nil {
		return nil, err
	}
	if len(a) > limit {
		return nil, errorf(code, "%s has %d %s; the limit is %d (%s)", path, len(a), noun, limit, limitName)
	}
	out := make([][]int64, len(a))
	for i, e := range a {
		if out[i], err = point(e, index(path, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (o *object) point(k string, required bool) ([]int64, error) {
	v, ok := o.get(k)
	if !ok {
		if required {
			return nil, errorf(CodeInvalidArgument, "%s is required: a point such as [0, 0, 0]", o.field(k))
		}
		return nil, nil
	}
	return point(v, o.field(k))
}

func (o *object) sub(k string) (*object, bool, error) {
	v, ok := o.get(k)
	if !ok {
		return nil, false, nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		return nil, false, errorf(CodeInvalidArgument, "%s must be an object, got %s", o.field(k), typeName(v))
	}
	return &object{m: m, path: o.field(k)}, true, nil
}

// name decodes the optional name.
func (o *object) name() (string, error) {
	name, _, err := o.str("name")
	if err != nil {
		return "", err
	}
	if len(name) > maxNameLen {
		return "", errorf(CodeInvalidArgument, "name is %d bytes long; at most %d are allowed", len(name), maxNameLen)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", errorf(CodeInvalidArgument, "name must not contain control characters")
	}
	return name, nil
}

// def decodes dims, boundary and blocked. With optionalDims, a missing
// dims yields a zero Def and no error.
func (o *object) def(lim Limits, optionalDims bool) (Def, error) {
	var d Def
	v, ok := o.get("dims")
	if !ok {
		if optionalDims {
			return d, nil
		}
		return d, errorf(CodeInvalidSpec, "%s is required: the axis lengths, such as [50, 50, 50]", o.field("dims"))
	}
	a, err := array(v, o.field("dims"), "an array of axis lengths such as [50, 50, 50]")
	if err != nil {
		return d, err
	}
	if len(a) == 0 || len(a) > lattice.MaxDims {
		return d, errorf(CodeInvalidSpec, "%s must have 1 to %d axes, got %d", o.field("dims"), lattice.MaxDims, len(a))
	}
	d.Dims = make([]int64, len(a))
	for i, e := range a {
		n, err := toInt(e, index(o.field("dims"), i))
		if err != nil {
			return d, err
		}
		if n <= 0 {
			return d, errorf(CodeInvalidSpec, "%s is %d: every axis length must be ≥ 1", index(o.field("dims"), i), n)
		}
		d.Dims[i] = n
	}
	b, ok, err := o.str("boundary")
	if err != nil {
		return d, err
	}
	switch {
	case !ok || b == "open":
	case b == "periodic":
		d.Periodic = true
	default:
		return d, errorf(CodeInvalidArgument, "%s must be \"open\" or \"periodic\", got %q", o.field("boundary"), truncate(b, 40))
	}
	v, ok = o.get("blocked")
	if !ok {
		return d, nil
	}
	path := o.field("blocked")
	limitName := "lattice.max_inline_blocked_cells"
	switch bv := v.(type) {
	case []any:
		d.Cells, err = points(bv, path, lim.MaxInlineBlockedCells, CodeTooManyCells, limitName, "cells")
		return d, err
	case map[string]any:
		bo := &object{m: bv, path: path}
		if err := bo.only("cells", "random"); err != nil {
			return d, err
		}
		if cv, ok := bo.get("cells"); ok {
			if d.Cells, err = points(cv, bo.field("cells"), lim.MaxInlineBlockedCells, CodeTooManyCells, limitName, "cells"); err != nil {
				return d, err
			}
		}
		ro, ok, err := bo.sub("random")
		if err != nil || !ok {
			return d, err
		}
		if err := ro.only("density", "seed"); err != nil {
			return d, err
		}
		dv, ok := ro.get("density")
		if !ok {
			return d, errorf(CodeInvalidDensity, "%s is required: the probability in [0, 1] that a point is blocked", ro.field("density"))
		}
		dn, isNum := dv.(json.Number)
		if !isNum {
			return d, errorf(CodeInvalidDensity, "%s must be a number in [0, 1], got %s", ro.field("density"), typeName(dv))
		}
		f, err := strconv.ParseFloat(dn.String(), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return d, errorf(CodeInvalidDensity, "%s must be in [0, 1], got %s", ro.field("density"), truncate(dn.String(), 40))
		}
		r := &lattice.RandomBlock{Density: f}
		if sv, ok := ro.get("seed"); ok {
			sn, isNum := sv.(json.Number)
			seed, err := strconv.ParseUint(sn.String(), 10, 64)
			if !isNum || err != nil {
				return d, errorf(CodeInvalidArgument, "%s must be an integer from 0 to 2^64-1, got %s", ro.field("seed"), describe(sv))
			}
			r.Seed = seed
		}
		d.Random = r
		return d, nil
	}
	return d, errorf(CodeInvalidArgument, "%s must be a list of points ([[x, y], …]) or an object such as {\"random\": {\"density\": 0.2, \"seed\": 7}}, got %s", path, typeName(v))
}

func describe(v any) string {
	if n, ok := v.(json.Number); ok {
		return truncate(n.String(), 40)
	}
	return typeName(v)
}

// target decodes lattice_id or an inline lattice (dims, boundary, blocked).
func (o *object) target(lim Limits) (Target, error) {
	id, hasID, err := o.str("lattice_id")
	if err != nil {
		return Target{}, err
	}
	_, hasDims := o.get("dims")
	_, hasBoundary := o.get("boundary")
	_, hasBlocked := o.get("blocked")
	switch {
	case hasID && (hasDims || hasBoundary || hasBlocked):
		return Target{}, errorf(CodeInvalidArgument, "give either lattice_id or an inline lattice (dims, boundary, blocked), not both")
	case hasID:
		return Target{ID: id}, nil
	case !hasDims:
		return Target{}, errorf(CodeInvalidArgument, "no lattice given: pass lattice_id (a stored lattice) or dims (an inline lattice, with optional boundary and blocked)")
	}
	d, err := o.def(lim, false)
	if err != nil {
		return Target{}, err
	}
	return Target{Def: &d}, nil
}

var algorithms = []string{lattice.AlgoAuto, lattice.AlgoClosedForm, lattice.AlgoBFS, lattice.AlgoBidirectional, lattice.AlgoAStar}

// pathRequest decodes from, to, catalytic, algorithm and length_only.
func (o *object) pathRequest() (PathRequest, error) {
	var r PathRequest
	var err error
	if r.From, err = o.point("from", true); err != nil {
		return r, err
	}
	if r.To, err = o.point("to", true); err != nil {
		return r, err
	}
	if r.Catalytic, err = o.boolean("catalytic"); err != nil {
		return r, err
	}
	if r.LengthOnly, err = o.boolean("length_only"); err != nil {
		return r, err
	}
	algo, ok, err := o.str("algorithm")
	if err != nil {
		return r, err
	}
	if ok {
		found := false
		for _, a := range algorithms {
			found = found || a == algo
		}
		if !found {
			return r, errorf(CodeInvalidArgument, "algorithm must be one of %s, got %q", strings.Join(algorithms, ", "), truncate(algo, 40))
		}
		r.Algorithm = algo
	}
	return r, nil
}

// transformKeys are the fields each transform kind takes.
var transformKeys = map[string][]string{
	"rotate":    {"kind", "plane", "quarter_turns"},
	"reflect":   {"kind", "axis"},
	"translate": {"kind", "offset"},
	"permute":   {"kind", "order"},
	"xor":       {"kind", "mask"},
	"compose":   {"kind", "steps"},
}

// smallInt decodes an integer that fits an int32.
func smallInt(v any, path string) (int, error) {
	n, err := toInt(v, path)
	if err != nil {
		return 0, err
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, errorf(CodeInvalidTransform, "%s is out of range: %d", path, n)
	}
	return int(n), nil
}

func intList(v any, path string) ([]int64, error) {
	a, err := array(v, path, "an array of integers, one per axis")
	if err != nil {
		return nil, err
	}
	if len(a) == 0 || len(a) > lattice.MaxDims {
		return nil, errorf(CodeInvalidTransform, "%s must have 1 to %d entries, got %d", path, lattice.MaxDims, len(a))
	}
	out := make([]int64, len(a))
	for i, e := range a {
		if out[i], err = toInt(e, index(path, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func transformSpec(v any, path string, nested bool) (TransformSpec, error) {
	var ts TransformSpec
	m, ok := v.(map[string]any)
	if !ok {
		return ts, errorf(CodeInvalidTransform, "%s must be an object such as {\"kind\": \"rotate\", \"plane\": [0, 1], \"quarter_turns\": 1}, got %s", path, typeName(v))
	}
	o := &object{m: m, path: path}
	kind, ok, err := o.str("kind")
	if err != nil {
		return ts, err
	}
	keys, known := transformKeys[kind]
	if !ok || !known || (nested && kind == "compose") {
		kinds := "rotate, reflect, translate, permute, xor, compose"
		if nested {
			kinds = "rotate, reflect, translate, permute, xor (compose steps cannot be compose)"
		}
		got := "nothing"
		if ok {
			got = strconv.Quote(truncate(kind, 40))
		}
		return ts, errorf(CodeInvalidTransform, "%s must be one of %s, got %s", o.field("kind"), kinds, got)
	}
	if err := o.only(keys...); err != nil {
		err.(*Error).Code, err.(*Error).Status = CodeInvalidTransform, codeStatus[CodeInvalidTransform]
		return ts, err
	}
	ts.Kind = kind
	need := func(k string) (any, error) {
		v, ok := o.get(k)
		if !ok {
			return nil, errorf(CodeInvalidTransform, "%s is required for a %s transform", o.field(k), kind)
		}
		return v, nil
	}
	switch kind {
	case "rotate":
		pv, err := need("plane")
		if err != nil {
			return ts, err
		}
		a, err := array(pv, o.field("plane"), "two axis numbers such as [0, 1]")
		if err != nil {
			return ts, err
		}
		if len(a) != 2 {
			return ts, errorf(CodeInvalidTransform, "%s must name exactly two axes, got %d", o.field("plane"), len(a))
		}
		for i := range 2 {
			if ts.Plane[i], err = smallInt(a[i], index(o.field("plane"), i)); err != nil {
				return ts, err
			}
		}
		ts.QuarterTurns = 1
		if qv, ok := o.get("quarter_turns"); ok {
			if ts.QuarterTurns, err = smallInt(qv, o.field("quarter_turns")); err != nil {
				return ts, err
			}
		}
	case "reflect":
		av, err := need("axis")
		if err != nil {
			return ts, err
		}
		if ts.Axis, err = smallInt(av, o.field("axis")); err != nil {
			return ts, err
		}
	case "translate":
		ov, err := need("offset")
		if err != nil {
			return ts, err
		}
		if ts.Offset, err = intList(ov, o.field("offset")); err != nil {
			return ts, err
		}
	case "permute":
		ov, err := need("order")
		if err != nil {
			return ts, err
		}
		l, err := intList(ov, o.field("order"))
		if err != nil {
			return ts, err
		}
		for i, x := range l {
			if x < 0 || x >= lattice.MaxDims {
				return ts, errorf(CodeInvalidTransform, "%s is %d, not an axis number", index(o.field("order"), i), x)
			}
			ts.Order = append(ts.Order, int(x))
		}
	case "xor":
		mv, err := need("mask")
		if err != nil {
			return ts, err
		}
		if ts.Mask, err = intList(mv, o.field("mask")); err != nil {
			return ts, err
		}
	case "compose":
		sv, err := need("steps")
		if err != nil {
			return ts, err
		}
		a, err := array(sv, o.field("steps"), "an array of transforms")
		if err != nil {
			return ts, err
		}
		if len(a) == 0 || len(a) > maxComposeSteps {
			return ts, errorf(CodeInvalidTransform, "%s must have 1 to %d steps, got %d", o.field("steps"), maxComposeSteps, len(a))
		}
		for i, e := range a {
			st, err := transformSpec(e, index(o.field("steps"), i), true)
			if err != nil {
				return ts, err
			}
			ts.Steps = append(ts.Steps, st)
		}
	}
	return ts, nil
}

// transformRequest decodes points and transform.
func (o *object) transformRequest(lim Limits) ([][]int64, TransformSpec, error) {
	pv, ok := o.get("points")
	if !ok {
		return nil, TransformSpec{}, errorf(CodeInvalidArgument, "%s is required: the points to transform, such as [[0, 0], [1, 2]]", o.field("points"))
	}
	pts, err := points(pv, o.field("points"), lim.MaxPathPoints, CodeTooManyInRequest, "lattice.max_path_points", "points")
	if err != nil {
		return nil, TransformSpec{}, err
	}
	tv, ok := o.get("transform")
	if !ok {
		return nil, TransformSpec{}, errorf(CodeInvalidTransform, "%s is required, such as {\"kind\": \"reflect\", \"axis\": 0}", o.field("transform"))
	}
	ts, err := transformSpec(tv, o.field("transform"), false)
	return pts, ts, err
}

// Request decoders shared by the MCP tools and the REST handlers.

func (s *Service) decodeCreate(raw []byte) (string, Def, error) {
	o, err := parseObject(raw)
	if err != nil {
		return "", Def{}, err
	}
	if err := o.only("name", "dims", "boundary", "blocked"); err != nil {
		return "", Def{}, err
	}
	name, err := o.name()
	if err != nil {
		return "", Def{}, err
	}
	d, err := o.def(s.Limits(), false)
	return name, d, err
}

func decodeID(raw []byte) (string, error) {
	o, err := parseObject(raw)
	if err != nil {
		return "", err
	}
	if err := o.only("lattice_id"); err != nil {
		return "", err
	}
	id, ok, err := o.str("lattice_id")
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errorf(CodeInvalidArgument, "lattice_id is required")
	}
	return id, nil
}

func decodeEmpty(raw []byte) error {
	o, err := parseObject(raw)
	if err != nil {
		return err
	}
	return o.only()
}

// decodePath decodes a path request; with inline, the lattice is named in
// the arguments (lattice_id or dims…), else it comes from the URL.
func (s *Service) decodePath(raw []byte, inline bool) (Target, PathRequest, error) {
	o, err := parseObject(raw)
	if err != nil {
		return Target{}, PathRequest{}, err
	}
	keys := []string{"from", "to", "catalytic", "algorithm", "length_only"}
	if inline {
		keys = append([]string{"lattice_id", "dims", "boundary", "blocked"}, keys...)
	}
	if err := o.only(keys...); err != nil {
		return Target{}, PathRequest{}, err
	}
	var t Target
	if inline {
		if t, err = o.target(s.Limits()); err != nil {
			return Target{}, PathRequest{}, err
		}
	}
	r, err := o.pathRequest()
	return t, r, err
}

func (s *Service) decodeTransform(raw []byte, inline bool) (Target, [][]int64, TransformSpec, error) {
	o, err := parseObject(raw)
	if err != nil {
		return Target{}, nil, TransformSpec{}, err
	}
	keys := []string{"points", "transform"}
	if inline {
		keys = append([]string{"lattice_id", "dims", "boundary", "blocked"}, keys...)
	}
	if err := o.only(keys...); err != nil {
		return Target{}, nil, TransformSpec{}, err
	}
	var t Target
	lim := s.Limits()
	if inline {
		if t, err = o.target(lim); err != nil {
			return Target{}, nil, TransformSpec{}, err
		}
	}
	pts, ts, err := o.transformRequest(lim)
	return t, pts, ts, err
}
