package latticesvc

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var toolNames = []string{"lattice_create", "lattice_delete", "lattice_get", "lattice_list", "lattice_path", "lattice_transform"}

func TestToolsListed(t *testing.T) {
	cs := client(t, newSvc(t))
	if got := cs.InitializeResult().ServerInfo.Name; got != "mcpedge-lattice" {
		t.Errorf("server name %q", got)
	}
	res, err := cs.ListTools(ctxT(t, 5*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		in, _ := tl.InputSchema.(map[string]any)
		if in["type"] != "object" || in["additionalProperties"] != false {
			t.Errorf("%s: input schema %v", tl.Name, in)
		}
		resolved(t, tl.InputSchema)
		if tl.OutputSchema == nil {
			t.Errorf("%s: no output schema", tl.Name)
		} else {
			resolved(t, tl.OutputSchema)
		}
		if tl.Description == "" || tl.Annotations == nil {
			t.Errorf("%s: no description or annotations", tl.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, toolNames) {
		t.Errorf("tools %v, want %v", names, toolNames)
	}
	// The path tool's schema is precise: dims are 1 to 32 positive integers,
	// boundary an enum, from and to required.
	for _, tl := range res.Tools {
		if tl.Name != "lattice_path" {
			continue
		}
		in := tl.InputSchema.(map[string]any)
		props := in["properties"].(map[string]any)
		dims := props["dims"].(map[string]any)
		if dims["minItems"] != 1.0 || dims["maxItems"] != 32.0 || dims["items"].(map[string]any)["minimum"] != 1.0 {
			t.Errorf("dims schema %v", dims)
		}
		if b := props["boundary"].(map[string]any); fmt.Sprint(b["enum"]) != "[open periodic]" {
			t.Errorf("boundary schema %v", b)
		}
		if fmt.Sprint(in["required"]) != "[from to]" {
			t.Errorf("required %v", in["required"])
		}
		for _, k := range []string{"lattice_id", "blocked", "catalytic", "algorithm", "length_only"} {
			if props[k] == nil {
				t.Errorf("no %s property", k)
			}
		}
	}
}

// outputSchema returns the output schema of the named tool.
func outputSchema(t *testing.T, cs *mcp.ClientSession, name string) any {
	res, err := cs.ListTools(ctxT(t, 5*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		if tl.Name == name {
			return tl.OutputSchema
		}
	}
	t.Fatalf("no tool %s", name)
	return nil
}

func TestToolPathInline(t *testing.T) {
	cs := client(t, newSvc(t))
	from, to := []int64{0, 0, 0}, []int64{49, 49, 49}
	res, text, sc := call(t, cs, "lattice_path", map[string]any{"dims": []int{50, 50, 50}, "boundary": "open", "from": from, "to": to})
	if res.IsError {
		t.Fatalf("error: %s", text)
	}
	if num(sc["length"]) != 147 || sc["reachable"] != true {
		t.Fatalf("result %v", sc)
	}
	checkPath(t, lattice.Spec{Dims: []int64{50, 50, 50}}, from, to, 147, sc["path"])
	mem := sc["memory"].(map[string]any)
	for _, k := range []string{"clean_bytes", "borrowed_bytes", "explicit_adjacency_bytes"} {
		if _, ok := mem[k]; !ok {
			t.Errorf("memory has no %s: %v", k, mem)
		}
	}
	if mem["explicit_adjacency_bytes"].(float64) <= 0 {
		t.Errorf("explicit adjacency size %v", mem["explicit_adjacency_bytes"])
	}
	if !strings.Contains(text, "length 147") || len(text) > 400 {
		t.Errorf("summary %q", text)
	}
	if err := validate(t, outputSchema(t, cs, "lattice_path"), sc); err != nil {
		t.Errorf("result does not match the output schema: %v", err)
	}

	// Periodic: the short way round.
	_, text, sc = call(t, cs, "lattice_path", map[string]any{"dims": []int{50, 50, 50}, "boundary": "periodic", "from": from, "to": to})
	if num(sc["length"]) != 3 {
		t.Errorf("periodic length %v (%s)", sc["length"], text)
	}
}

func TestToolPathBlocked(t *testing.T) {
	cs := client(t, newSvc(t))
	spec := lattice.Spec{Dims: []int64{50, 50, 50}, Blocked: lattice.Blocking{Random: &lattice.RandomBlock{Density: 0.2, Seed: 7}}}
	from, to := []int64{0, 0, 0}, []int64{49, 49, 49}
	for _, catalytic := range []bool{false, true} {
		args := map[string]any{"dims": []int{50, 50, 50}, "blocked": map[string]any{"random": map[string]any{"density": 0.2, "seed": 7}}, "from": from, "to": to, "catalytic": catalytic}
		res, text, sc := call(t, cs, "lattice_path", args)
		if res.IsError || sc["reachable"] != true {
			t.Fatalf("catalytic=%v: %s", catalytic, text)
		}
		length := num(sc["length"])
		if length < 147 {
			t.Fatalf("length %d below the Manhattan distance", length)
		}
		checkPath(t, spec, from, to, length, sc["path"])
		mem := sc["memory"].(map[string]any)
		if catalytic && (mem["catalytic"] != true || num(mem["borrowed_bytes"]) <= 0) {
			t.Errorf("catalytic run borrowed nothing: %v", mem)
		}
		if !catalytic && num(mem["borrowed_bytes"]) != 0 {
			t.Errorf("clean run borrowed: %v", mem)
		}
	}

	// Explicit cells: a wall with one gap forces a detour.
	var wall [][]int64
	for y := int64(0); y < 10; y++ {
		if y != 9 {
			wall = append(wall, []int64{5, y})
		}
	}
	wspec := lattice.Spec{Dims: []int64{10, 10}, Blocked: lattice.Blocking{Cells: wall}}
	_, text, sc := call(t, cs, "lattice_path", map[string]any{"dims": []int{10, 10}, "blocked": wall, "from": []int{0, 0}, "to": []int{9, 0}})
	if num(sc["length"]) != 9+2*9 {
		t.Fatalf("detour length %v (%s)", sc["length"], text)
	}
	checkPath(t, wspec, []int64{0, 0}, []int64{9, 0}, 27, sc["path"])

	// Unreachable is an answer, not an error.
	closed := append(wall, []int64{5, 9})
	res, text, sc := call(t, cs, "lattice_path", map[string]any{"dims": []int{10, 10}, "blocked": map[string]any{"cells": closed}, "from": []int{0, 0}, "to": []int{9, 0}})
	if res.IsError || sc["reachable"] != false || num(sc["length"]) != -1 || sc["path"] != nil {
		t.Errorf("unreachable: %s %v", text, sc)
	}

	// Length only.
	_, _, sc = call(t, cs, "lattice_path", map[string]any{"dims": []int{10, 10}, "from": []int{0, 0}, "to": []int{9, 9}, "length_only": true})
	if num(sc["length"]) != 18 || sc["path"] != nil || sc["path_omitted"] == nil {
		t.Errorf("length only: %v", sc)
	}
}

func TestToolPathOmittedOverLimit(t *testing.T) {
	svc := newSvc(t, func(o *Options) { o.Limits.MaxPathPoints = 10 })
	cs := client(t, svc)
	_, text, sc := call(t, cs, "lattice_path", map[string]any{"dims": []int{100}, "from": []int{0}, "to": []int{99}})
	if num(sc["length"]) != 99 || sc["path"] != nil || !strings.Contains(fmt.Sprint(sc["path_omitted"]), "limit of 10 (lattice.max_path_points)") {
		t.Errorf("over max_path_points: %v", sc)
	}
	if !strings.Contains(text, "path omitted") {
		t.Errorf("summary does not say the path was omitted: %q", text)
	}
}

func TestToolCRUD(t *testing.T) {
	cs := client(t, newSvc(t))
	res, text, created := call(t, cs, "lattice_create", map[string]any{"name": "cube", "dims": []int{50, 50, 50}, "blocked": map[string]any{"random": map[string]any{"density": 0.2, "seed": 7}, "cells": [][]int{{1, 1, 1}}}})
	if res.IsError {
		t.Fatal(text)
	}
	id, _ := created["id"].(string)
	if !validID(id) || created["name"] != "cube" || num(created["points"]) != 125000 || num(created["blocked_cells"]) != 1 || created["persisted"] != true {
		t.Fatalf("created %v", created)
	}
	if err := validate(t, outputSchema(t, cs, "lattice_create"), created); err != nil {
		t.Errorf("create result vs schema: %v", err)
	}
	_, _, got := call(t, cs, "lattice_get", map[string]any{"lattice_id": id})
	if must(json.Marshal(got)) == nil || string(must(json.Marshal(got))) != string(must(json.Marshal(created))) {
		t.Errorf("get %v, created %v", got, created)
	}
	_, text, list := call(t, cs, "lattice_list", map[string]any{})
	ls := list["lattices"].([]any)
	if len(ls) != 1 || ls[0].(map[string]any)["id"] != id || num(list["limit"]) != 1000 {
		t.Fatalf("list %v", list)
	}
	if b := ls[0].(map[string]any)["blocked"].(map[string]any); b["cells"] != nil || b["random"] == nil {
		t.Errorf("list entry blocked %v (cells should be left out)", b)
	}
	if err := validate(t, outputSchema(t, cs, "lattice_list"), list); err != nil {
		t.Errorf("list vs schema: %v", err)
	}
	if !strings.Contains(text, "1 stored") {
		t.Errorf("list summary %q", text)
	}

	_, text, p := call(t, cs, "lattice_path", map[string]any{"lattice_id": id, "from": []int{0, 0, 0}, "to": []int{49, 49, 49}})
	if p["lattice_id"] != id || p["reachable"] != true {
		t.Fatalf("path by id: %s", text)
	}
	spec := lattice.Spec{Dims: []int64{50, 50, 50}, Blocked: lattice.Blocking{Cells: [][]int64{{1, 1, 1}}, Random: &lattice.RandomBlock{Density: 0.2, Seed: 7}}}
	checkPath(t, spec, []int64{0, 0, 0}, []int64{49, 49, 49}, num(p["length"]), p["path"])
	res, text, _ = call(t, cs, "lattice_path", map[string]any{"lattice_id": id, "from": []int{0, 0, 0}, "to": []int{1, 1, 1}})
	if !res.IsError || !strings.HasPrefix(text, "blocked_endpoint: ") {
		t.Errorf("path to a stored blocked cell: %s", text)
	}

	_, _, tr := call(t, cs, "lattice_transform", map[string]any{"lattice_id": id, "points": [][]int{{0, 0, 0}, {1, 2, 3}}, "transform": map[string]any{"kind": "reflect", "axis": 2}})
	if fmt.Sprint(tr["points"]) != "[[0 0 49] [1 2 46]]" || tr["inverse_check"] != true {
		t.Errorf("transform by id %v", tr)
	}

	res, text, del := call(t, cs, "lattice_delete", map[string]any{"lattice_id": id})
	if res.IsError || del["deleted"] != true || del["id"] != id {
		t.Fatalf("delete: %s %v", text, del)
	}
	res, text, _ = call(t, cs, "lattice_get", map[string]any{"lattice_id": id})
	if !res.IsError || !strings.HasPrefix(text, "not_found: ") {
		t.Errorf("get after delete: %s", text)
	}
	res, text, _ = call(t, cs, "lattice_delete", map[string]any{"lattice_id": id})
	if !res.IsError || !strings.HasPrefix(text, "not_found: ") {
		t.Errorf("second delete: %s", text)
	}
}

func TestToolTransform(t *testing.T) {
	cs := client(t, newSvc(t))
	cases := []struct {
		dims      []int
		boundary  string
		points    [][]int
		transform map[string]any
		want      string
		name      string
	}{
		{[]int{4, 4}, "", [][]int{{0, 0}, {1, 2}, {3, 3}}, map[string]any{"kind": "rotate", "plane": []int{0, 1}, "quarter_turns": 1}, "[[3 0] [1 1] [0 3]]", "rotate(0,1)×1"},
		{[]int{4, 4}, "", [][]int{{1, 2}}, map[string]any{"kind": "rotate", "plane": []int{0, 1}}, "[[1 1]]", "rotate(0,1)×1"},
		{[]int{4, 4}, "", [][]int{{1, 2}}, map[string]any{"kind": "rotate", "plane": []int{0, 1}, "quarter_turns": -1}, "[[2 2]]", "rotate(0,1)×3"},
		{[]int{5, 3}, "", [][]int{{0, 1}}, map[string]any{"kind": "reflect", "axis": 0}, "[[4 1]]", "reflect(0)"},
		{[]int{5, 3}, "periodic", [][]int{{4, 2}}, map[string]any{"kind": "translate", "offset": []int{1, 1}}, "[[0 0]]", "translate[1 1]"},
		{[]int{3, 3, 7}, "", [][]int{{0, 1, 6}}, map[string]any{"kind": "permute", "order": []int{1, 0, 2}}, "[[1 0 6]]", "permute[1 0 2]"},
		{[]int{8, 4}, "", [][]int{{5, 1}}, map[string]any{"kind": "xor", "mask": []int{7, 2}}, "[[2 3]]", "xor[7 2]"},
		{[]int{4, 4}, "", [][]int{{1, 2}}, map[string]any{"kind": "compose", "steps": []any{map[string]any{"kind": "reflect", "axis": 0}, map[string]any{"kind": "permute", "order": []int{1, 0}}}}, "[[2 2]]", "compose(reflect(0), permute[1 0])"},
		{[]int{4, 4}, "", [][]int{}, map[string]any{"kind": "reflect", "axis": 1}, "[]", "reflect(1)"},
	}
	schema := outputSchema(t, cs, "lattice_transform")
	for _, c := range cases {
		args := map[string]any{"dims": c.dims, "points": c.points, "transform": c.transform}
		if c.boundary != "" {
			args["boundary"] = c.boundary
		}
		res, text, sc := call(t, cs, "lattice_transform", args)
		if res.IsError {
			t.Errorf("%v: %s", c.transform, text)
			continue
		}
		if got := fmt.Sprint(sc["points"]); got != c.want || sc["transform"] != c.name || sc["inverse_check"] != true {
			t.Errorf("%v on %v: got %v (%v), want %s (%s)", c.transform, c.points, got, sc["transform"], c.want, c.name)
		}
		if err := validate(t, schema, sc); err != nil {
			t.Errorf("%v: result vs schema: %v", c.transform, err)
		}
	}
}

// badInputs are the bad inputs of issue 5, each with the error code it must
// produce and a fragment of the message; the REST test runs the same list.
var badInputs = []struct {
	name string
	tool string
	args map[string]any
	code string
	msg  string
}{
	{"zero size", "lattice_path", map[string]any{"dims": []int{5, 0}, "from": []int{0, 0}, "to": []int{1, 0}}, "invalid_spec", "dims[1] is 0: every axis length must be ≥ 1"},
	{"negative size", "lattice_create", map[string]any{"dims": []int{-3}}, "invalid_spec", "dims[0] is -3"},
	{"no axes", "lattice_create", map[string]any{"dims": []int{}}, "invalid_spec", "1 to 32 axes, got 0"},
	{"33 axes", "lattice_create", map[string]any{"dims": slices.Repeat([]int{1}, 33)}, "invalid_spec", "1 to 32 axes, got 33"},
	{"dims missing", "lattice_create", map[string]any{"name": "x"}, "invalid_spec", "dims is required"},
	{"dims not array", "lattice_create", map[string]any{"dims": "50x50"}, "invalid_argument", "dims must be an array"},
	{"dims fraction", "lattice_create", map[string]any{"dims": []any{2.5}}, "invalid_argument", "dims[0] must be an integer"},
	{"too many points for the plan", "lattice_create", map[string]any{"dims": []int{1001, 1000}}, "too_many_points", "lattice.max_points is 1000000"},
	{"more than 2^62 points", "lattice_path", map[string]any{"dims": []int64{1 << 31, 1 << 31, 1 << 31}, "from": []int{0, 0, 0}, "to": []int{0, 0, 1}}, "too_many_points", "too many points"},
	{"endpoint out of bounds", "lattice_path", map[string]any{"dims": []int{50, 50, 50}, "from": []int{0, 0, 0}, "to": []int{50, 0, 0}}, "out_of_bounds", "coordinate 0 is 50, must be in [0, 50)"},
	{"negative coordinate", "lattice_path", map[string]any{"dims": []int{50, 50}, "from": []int{-1, 0}, "to": []int{1, 0}}, "out_of_bounds", "from"},
	{"endpoint blocked", "lattice_path", map[string]any{"dims": []int{5, 5}, "blocked": [][]int{{2, 2}}, "from": []int{0, 0}, "to": []int{2, 2}}, "blocked_endpoint", "to [2 2]"},
	{"endpoint blocked at random", "lattice_path", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"density": 1}}, "from": []int{0, 0}, "to": []int{2, 2}}, "blocked_endpoint", "from [0 0]"},
	{"wrong number of coordinates", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": []int{0, 0, 0}, "to": []int{1, 1}}, "dimension_mismatch", "got 3, lattice has 2"},
	{"coordinate not a number", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": []any{0, "1"}, "to": []int{1, 1}}, "invalid_argument", "from[1] must be an integer, got a string"},
	{"coordinate fraction", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": []any{0, 0.5}, "to": []int{1, 1}}, "invalid_argument", "from[1] must be an integer"},
	{"point not an array", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": "0,0", "to": []int{1, 1}}, "invalid_argument", "from must be an array of integer coordinates"},
	{"empty point", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": []int{}, "to": []int{1, 1}}, "invalid_argument", "from must have 1 to 32 coordinates"},
	{"to missing", "lattice_path", map[string]any{"dims": []int{5, 5}, "from": []int{0, 0}}, "invalid_argument", "to is required"},
	{"blocked cell malformed", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": []any{[]int{1, 1}, 7}}, "invalid_argument", "blocked[1] must be an array"},
	{"blocked cell out of bounds", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": [][]int{{1, 9}}}, "out_of_bounds", "blocked cell 0"},
	{"density above 1", "lattice_path", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"density": 1.5, "seed": 7}}, "from": []int{0, 0}, "to": []int{1, 1}}, "invalid_density", "blocked.random.density must be in [0, 1], got 1.5"},
	{"density negative", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"density": -0.1}}}, "invalid_density", "got -0.1"},
	{"density not a number", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"density": "high"}}}, "invalid_density", "must be a number in [0, 1]"},
	{"density missing", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"seed": 1}}}, "invalid_density", "density is required"},
	{"seed negative", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"random": map[string]any{"density": 0.1, "seed": -1}}}, "invalid_argument", "seed must be an integer from 0 to 2^64-1"},
	{"too many blocked cells", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": [][]int{{0, 0}, {1, 1}, {2, 2}, {3, 3}}}, "too_many_blocked_cells", "limit is 3 (lattice.max_inline_blocked_cells)"},
	{"blocked wrong type", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": 0.2}, "invalid_argument", "blocked must be a list of points"},
	{"unknown blocked key", "lattice_create", map[string]any{"dims": []int{5, 5}, "blocked": map[string]any{"density": 0.2}}, "invalid_argument", `unknown field "density" in blocked`},
	{"boundary", "lattice_create", map[string]any{"dims": []int{5}, "boundary": "closed"}, "invalid_argument", `boundary must be "open" or "periodic", got "closed"`},
	{"unknown field", "lattice_path", map[string]any{"dims": []int{5}, "from": []int{0}, "to": []int{1}, "catalitic": true}, "invalid_argument", `unknown field "catalitic"`},
	{"catalytic not bool", "lattice_path", map[string]any{"dims": []int{5}, "from": []int{0}, "to": []int{1}, "catalytic": "yes"}, "invalid_argument", "catalytic must be true or false"},
	{"algorithm", "lattice_path", map[string]any{"dims": []int{5}, "from": []int{0}, "to": []int{1}, "algorithm": "dijkstra"}, "invalid_argument", "algorithm must be one of"},
	{"no lattice", "lattice_path", map[string]any{"from": []int{0}, "to": []int{1}}, "invalid_argument", "no lattice given"},
	{"id and inline", "lattice_path", map[string]any{"lattice_id": "lat_0123456789abcdef", "dims": []int{5}, "from": []int{0}, "to": []int{1}}, "invalid_argument", "not both"},
	{"malformed id", "lattice_get", map[string]any{"lattice_id": "42"}, "invalid_id", "not a lattice id"},
	{"unknown id", "lattice_path", map[string]any{"lattice_id": "lat_0123456789abcdef", "from": []int{0}, "to": []int{1}}, "not_found", "no lattice with id lat_0123456789abcdef"},
	{"name too long", "lattice_create", map[string]any{"name": strings.Repeat("n", 129), "dims": []int{5}}, "invalid_argument", "name is 129 bytes long"},
	{"transform kind", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "shear"}}, "invalid_transform", `transform.kind must be one of rotate, reflect, translate, permute, xor, compose, got "shear"`},
	{"rotation of unequal axes", "lattice_transform", map[string]any{"dims": []int{4, 5}, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "rotate", "plane": []int{0, 1}}}, "invalid_transform", "needs equal lengths"},
	{"rotate without plane", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "rotate"}}, "invalid_transform", "transform.plane is required"},
	{"field of another kind", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "reflect", "axis": 0, "offset": []int{1, 1}}}, "invalid_transform", `unknown field "offset" in transform`},
	{"nested compose", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{0, 0}}, "transform": map[string]any{"kind": "compose", "steps": []any{map[string]any{"kind": "compose", "steps": []any{}}}}}, "invalid_transform", "compose steps cannot be compose"},
	{"translation leaves the box", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{3, 0}}, "transform": map[string]any{"kind": "translate", "offset": []int{1, 0}}}, "out_of_bounds", "outside [0, 4) on an open lattice"},
	{"transform point out of bounds", "lattice_transform", map[string]any{"dims": []int{4, 4}, "points": [][]int{{0, 4}}, "transform": map[string]any{"kind": "reflect", "axis": 0}}, "out_of_bounds", "point 0"},
	{"xor not a bijection", "lattice_transform", map[string]any{"dims": []int{6}, "points": [][]int{{0}}, "transform": map[string]any{"kind": "xor", "mask": []int{4}}}, "invalid_transform", "does not map [0, 6) onto itself"},
	{"too many points to transform", "lattice_transform", map[string]any{"dims": []int{100}, "points": slices.Repeat([][]int{{1}}, 101), "transform": map[string]any{"kind": "reflect", "axis": 0}}, "too_many_points_in_request", "limit is 100 (lattice.max_path_points)"},
	{"points missing", "lattice_transform", map[string]any{"dims": []int{4}, "transform": map[string]any{"kind": "reflect", "axis": 0}}, "invalid_argument", "points is required"},
}

// badInputLimits are the limits the bad-input table assumes.
func badInputLimits(o *Options) {
	o.Limits.MaxPoints = 1e6
	o.Limits.MaxInlineBlockedCells = 3
	o.Limits.MaxPathPoints = 100
}

func TestToolBadInput(t *testing.T) {
	cs := client(t, newSvc(t, badInputLimits))
	for _, c := range badInputs {
		res, text, sc := call(t, cs, c.tool, c.args)
		if !res.IsError || sc != nil {
			t.Errorf("%s: not an error result: %s", c.name, text)
			continue
		}
		if !strings.HasPrefix(text, c.code+": ") || !strings.Contains(text, c.msg) {
			t.Errorf("%s: got %q, want code %s and %q", c.name, text, c.code, c.msg)
		}
	}
}

func TestToolTimeout(t *testing.T) {
	// An operation timeout that has always expired.
	svc := newSvc(t, func(o *Options) { o.Limits.OperationTimeout = time.Nanosecond })
	cs := client(t, svc)
	res, text, _ := call(t, cs, "lattice_path", map[string]any{"dims": []int{10, 10}, "blocked": [][]int{{5, 5}}, "from": []int{0, 0}, "to": []int{9, 9}})
	if !res.IsError || !strings.HasPrefix(text, "timeout: ") || !strings.Contains(text, "lattice.operation_timeout") {
		t.Errorf("expired timeout: %s", text)
	}

	// A search that would take far longer than its timeout is stopped.
	lim := DefaultLimits()
	lim.OperationTimeout = 20 * time.Millisecond
	svc.SetLimits(lim)
	start := time.Now()
	res, text, _ = call(t, cs, "lattice_path", map[string]any{"dims": []int{4000, 2500}, "blocked": [][]int{{0, 0}}, "from": []int{2000, 1250}, "to": []int{3999, 2499}, "algorithm": "bfs"})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("timed-out search returned after %s", took)
	}
	if !res.IsError || !strings.HasPrefix(text, "timeout: ") {
		t.Errorf("long search: %s", text)
	}
}
