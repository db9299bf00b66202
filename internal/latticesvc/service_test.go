package latticesvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mcpedge/mcpedge/internal/lattice"
)

func code(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	svc := New(Options{DataDir: dir})
	if p := svc.Persistence(); p.File != filepath.Join(dir, "lattices.json") || p.Err != nil || p.Warning != "" {
		t.Fatalf("persistence %+v", p)
	}
	a, err := svc.Create("walls", Def{Dims: []int64{10, 10}, Periodic: true, Cells: [][]int64{{5, 5}, {5, 6}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Create("", Def{Dims: []int64{50, 50, 50}, Random: &lattice.RandomBlock{Density: 0.2, Seed: 1<<64 - 1}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.Create("gone", Def{Dims: []int64{3}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(c.ID); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "lattices.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file: %v %v", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("data dir holds %d entries (temporary files left?)", len(ents))
	}

	again := New(Options{DataDir: dir})
	list, err := again.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("after restart: %+v", list)
	}
	for _, want := range []Info{a, b} {
		got, err := again.Get(want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after restart got %+v, %v\nwant %+v", got, err, want)
		}
	}
	if _, err := again.Get(c.ID); code(err) != CodeNotFound {
		t.Errorf("deleted lattice came back: %v", err)
	}
	res, err := again.Path(context.Background(), Target{ID: a.ID}, PathRequest{From: []int64{4, 5}, To: []int64{6, 5}})
	if err != nil || res.Length != 4 {
		t.Errorf("path on a reloaded lattice: %+v %v", res, err)
	}
}

func TestCorruptStore(t *testing.T) {
	valid := `{"version": 1, "lattices": [{"id": "lat_0123456789abcdef", "created": "2026-01-02T03:04:05Z", "dims": [4, 4], "boundary": "open"}]}`
	cases := []struct{ name, content, msg string }{
		{"garbage", "not json at all", "not a valid lattice store: line 1, column"},
		{"truncated", valid[:60], "not a valid lattice store"},
		{"trailing data", valid + "{}", "data after the JSON object"},
		{"wrong version", strings.Replace(valid, `"version": 1`, `"version": 9`, 1), "format version 9"},
		{"unknown field", strings.Replace(valid, `"version": 1`, `"version": 1, "extra": 1`, 1), `unknown field "extra"`},
		{"bad id", strings.Replace(valid, "lat_0123456789abcdef", "x", 1), `lattices[0]: id "x" is not a lattice id`},
		{"bad dims", strings.Replace(valid, "[4, 4]", "[4, 0]", 1), "lattices[0]: dims[1] is 0"},
		{"bad density", strings.Replace(valid, `"boundary": "open"`, `"boundary": "open", "blocked": {"random": {"density": 2}}`, 1), "lattices[0]: blocked.random.density must be in [0, 1]"},
		{"bad time", strings.Replace(valid, "2026-01-02T03:04:05Z", "yesterday", 1), "not an RFC 3339 time"},
		{"duplicate", strings.Replace(valid, `"open"}]}`, `"open"}, {"id": "lat_0123456789abcdef", "created": "2026-01-02T03:04:05Z", "dims": [2]}]}`, 1), "lattices[1]: duplicate id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "lattices.json")
			if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			svc := New(Options{DataDir: dir})
			p := svc.Persistence()
			if p.Err == nil || !strings.Contains(p.Err.Error(), c.msg) || !strings.Contains(p.Err.Error(), file) {
				t.Fatalf("load error %v, want it to name %s and say %q", p.Err, file, c.msg)
			}
			if _, err := svc.Create("x", Def{Dims: []int64{3}}); code(err) != CodeStoreUnavailable || !strings.Contains(err.Error(), "never overwritten") {
				t.Errorf("create on a corrupt store: %v", err)
			}
			if _, err := svc.List(); code(err) != CodeStoreUnavailable {
				t.Errorf("list on a corrupt store: %v", err)
			}
			if err := svc.Delete("lat_0123456789abcdef"); code(err) != CodeStoreUnavailable {
				t.Errorf("delete on a corrupt store: %v", err)
			}
			// Inline lattices still work.
			if res, err := svc.Path(context.Background(), Target{Def: &Def{Dims: []int64{4, 4}}}, PathRequest{From: []int64{0, 0}, To: []int64{3, 3}}); err != nil || res.Length != 6 {
				t.Errorf("inline path on a corrupt store: %+v %v", res, err)
			}
			got, _ := os.ReadFile(file)
			if !bytes.Equal(got, []byte(c.content)) {
				t.Errorf("corrupt file was modified")
			}
		})
	}
	// The valid base case loads.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lattices.json"), []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := New(Options{DataDir: dir})
	if in, err := svc.Get("lat_0123456789abcdef"); err != nil || in.Points != 16 {
		t.Errorf("valid file: %+v %v", in, err)
	}
}

func TestDataDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	svc := New(Options{DataDir: filepath.Join(file, "sub")})
	p := svc.Persistence()
	if p.File != "" || p.Err != nil || !strings.Contains(p.Warning, "cannot be created") {
		t.Fatalf("persistence %+v", p)
	}
	in, err := svc.Create("mem", Def{Dims: []int64{3, 3}})
	if err != nil || in.Persisted {
		t.Fatalf("create without persistence: %+v %v", in, err)
	}
	if l, err := svc.List(); err != nil || len(l) != 1 {
		t.Errorf("list without persistence: %v %v", l, err)
	}

	none := New(Options{})
	if p := none.Persistence(); p.File != "" || !strings.Contains(p.Warning, "no data directory") {
		t.Errorf("no data dir: %+v", p)
	}
}

func TestStoreWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	svc := New(Options{DataDir: dir})
	keep, err := svc.Create("keep", Def{Dims: []int64{3}})
	if err != nil {
		t.Fatal(err)
	}
	// Replace the directory with a file: every write now fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create("lost", Def{Dims: []int64{3}}); code(err) != CodeStoreWrite {
		t.Errorf("create with a broken data dir: %v", err)
	}
	if err := svc.Delete(keep.ID); code(err) != CodeStoreWrite {
		t.Errorf("delete with a broken data dir: %v", err)
	}
	// Memory still matches what was last written.
	if l, _ := svc.List(); len(l) != 1 || l[0].ID != keep.ID {
		t.Errorf("registry changed although the write failed: %+v", l)
	}
}

func TestMaxLattices(t *testing.T) {
	svc := newSvc(t, func(o *Options) { o.Limits.MaxLattices = 2 })
	for range 2 {
		if _, err := svc.Create("", Def{Dims: []int64{2}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Create("", Def{Dims: []int64{2}}); code(err) != CodeTooManyLattices || !strings.Contains(err.Error(), "lattice.max_lattices") {
		t.Errorf("third lattice: %v", err)
	}
	off := newSvc(t, func(o *Options) { o.Limits.MaxLattices = 0 })
	if _, err := off.Create("", Def{Dims: []int64{2}}); code(err) != CodeTooManyLattices || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("storing turned off: %v", err)
	}
}

// TestLimitsApplyToStored: a lattice stored under a larger plan is refused
// once the plan shrinks, and served again when it grows back.
func TestLimitsApplyToStored(t *testing.T) {
	svc := newSvc(t)
	in, err := svc.Create("", Def{Dims: []int64{100, 100}, Cells: [][]int64{{1, 1}, {2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	req := PathRequest{From: []int64{0, 0}, To: []int64{99, 99}}
	lim := svc.Limits()
	small := lim
	small.MaxPoints = 100
	svc.SetLimits(small)
	if _, err := svc.Path(context.Background(), Target{ID: in.ID}, req); code(err) != CodeTooManyPoints {
		t.Errorf("over max_points: %v", err)
	}
	small = lim
	small.MaxInlineBlockedCells = 1
	svc.SetLimits(small)
	if _, err := svc.Path(context.Background(), Target{ID: in.ID}, req); code(err) != CodeTooManyCells {
		t.Errorf("over max_inline_blocked_cells: %v", err)
	}
	svc.SetLimits(lim)
	if res, err := svc.Path(context.Background(), Target{ID: in.ID}, req); err != nil || res.Length != 198 {
		t.Errorf("back under the limits: %+v %v", res, err)
	}
}

func TestCanceled(t *testing.T) {
	svc := newSvc(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := svc.Path(ctx, Target{Def: &Def{Dims: []int64{100, 100}, Cells: [][]int64{{5, 5}}}}, PathRequest{From: []int64{0, 0}, To: []int64{99, 99}})
	if code(err) != CodeCanceled {
		t.Errorf("canceled by the caller: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	svc := newSvc(t, func(o *Options) { o.MaxConcurrent = 2 })
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			in, err := svc.Create("", Def{Dims: []int64{30, 30}, Random: &lattice.RandomBlock{Density: 0.1, Seed: uint64(i)}})
			if err != nil {
				errs <- err
				return
			}
			for range 3 {
				_, err := svc.Path(context.Background(), Target{ID: in.ID}, PathRequest{From: []int64{15, 15}, To: []int64{15, 15}, Catalytic: i%2 == 0})
				if err != nil && code(err) != CodeBlockedEndpoint {
					errs <- err
				}
			}
			if _, err := svc.List(); err != nil {
				errs <- err
			}
			if i%2 == 1 {
				if err := svc.Delete(in.ID); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, _ := svc.List()
	if len(l) != 4 {
		t.Errorf("%d lattices left, want 4", len(l))
	}
	var ff fileFormat
	data, _ := os.ReadFile(svc.Persistence().File)
	if err := json.Unmarshal(data, &ff); err != nil || len(ff.Lattices) != 4 {
		t.Errorf("file holds %d lattices (%v)", len(ff.Lattices), err)
	}
}
