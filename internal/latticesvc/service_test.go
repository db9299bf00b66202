package latticesvc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/mcpedge/mcpedge/internal/store"
)

func code(err error) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

var bg = context.Background()

func TestPersistenceAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mcpedge.db")
	st := openStore(t, path)
	tenant := addTenant(t, st, "acme")
	svc := New(Options{Store: st, DefaultTenant: tenant})
	if p := svc.Persistence(); !p.Stored || p.Err != nil || p.Warning != "" {
		t.Fatalf("persistence %+v", p)
	}
	a, err := svc.Create(bg, "walls", Def{Dims: []int64{10, 10}, Periodic: true, Cells: [][]int64{{5, 5}, {5, 6}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Create(bg, "", Def{Dims: []int64{50, 50, 50}, Random: &lattice.RandomBlock{Density: 0.2, Seed: 1<<64 - 1}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := svc.Create(bg, "gone", Def{Dims: []int64{3}})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Persisted || a.Created.IsZero() {
		t.Errorf("created %+v", a)
	}
	if err := svc.Delete(bg, c.ID); err != nil {
		t.Fatal(err)
	}
	closeStore(t, st)

	again := New(Options{Store: openStore(t, path), DefaultTenant: tenant})
	list, err := again.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("after reopening: %+v", list)
	}
	for _, want := range []Info{a, b} {
		got, err := again.Get(bg, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after reopening got %+v, %v\nwant %+v", got, err, want)
		}
	}
	if _, err := again.Get(bg, c.ID); code(err) != CodeNotFound {
		t.Errorf("deleted lattice came back: %v", err)
	}
	res, err := again.Path(bg, Target{ID: a.ID}, PathRequest{From: []int64{4, 5}, To: []int64{6, 5}})
	if err != nil || res.Length != 4 {
		t.Errorf("path on a reopened store: %+v %v", res, err)
	}
}

const legacyFile = `{"version": 1, "lattices": [
  {"id": "lat_0123456789abcdef", "name": "old", "created": "2026-01-02T03:04:05.678Z", "dims": [4, 4], "boundary": "open", "blocked": {"cells": [[1, 1]]}},
  {"id": "lat_fedcba9876543210", "created": "2026-01-03T00:00:00Z", "dims": [10], "boundary": "periodic", "blocked": {"random": {"density": 0.5, "seed": 3}}}
]}
`

func writeLegacy(t *testing.T, dir, content string) string {
	t.Helper()
	file := filepath.Join(dir, "lattices.json")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestImportLatticesJSON(t *testing.T) {
	dir := t.TempDir()
	file := writeLegacy(t, dir, legacyFile)
	st := newStore(t)
	acme, other := addTenant(t, st, "acme"), addTenant(t, st, "other")
	svc := New(Options{Store: st, DefaultTenant: acme, DataDir: dir, ImportTenant: acme})
	if p := svc.Persistence(); !p.Stored || p.Err != nil || p.Warning != "" {
		t.Fatalf("persistence %+v", p)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lattices.json is still there: %v", err)
	}
	if got, err := os.ReadFile(file + ".imported"); err != nil || string(got) != legacyFile {
		t.Errorf("lattices.json.imported: %v", err)
	}
	list, err := svc.List(bg)
	if err != nil || len(list) != 2 || list[0].ID != "lat_0123456789abcdef" || list[1].ID != "lat_fedcba9876543210" {
		t.Fatalf("imported: %+v %v", list, err)
	}
	in, err := svc.Get(bg, "lat_0123456789abcdef")
	want := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)
	if err != nil || in.Name != "old" || in.Points != 16 || !in.Created.Equal(want) || in.Blocked == nil || len(in.Blocked.Cells) != 1 {
		t.Errorf("imported lattice %+v %v", in, err)
	}
	if in, err := svc.Get(bg, "lat_fedcba9876543210"); err != nil || in.Boundary != "periodic" || in.Blocked.Random.Seed != 3 {
		t.Errorf("imported lattice %+v %v", in, err)
	}
	if l, err := svc.List(as(bg, other, "")); err != nil || len(l) != 0 {
		t.Errorf("another tenant sees the import: %+v %v", l, err)
	}

	// A second start finds no file; one that finds the file again (an
	// import cut short before the rename) skips what is there.
	if p := New(Options{Store: st, DefaultTenant: acme, DataDir: dir, ImportTenant: acme}).Persistence(); p.Err != nil || p.Warning != "" {
		t.Errorf("second start: %+v", p)
	}
	writeLegacy(t, dir, legacyFile)
	again := New(Options{Store: st, DefaultTenant: acme, DataDir: dir, ImportTenant: acme})
	if p := again.Persistence(); p.Err != nil {
		t.Errorf("re-import: %+v", p)
	}
	if l, _ := again.List(bg); len(l) != 2 {
		t.Errorf("re-import duplicated lattices: %+v", l)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lattices.json is still there after the re-import: %v", err)
	}

	// The same ids imported into another tenant: refused, file left alone,
	// only that tenant's stored lattices are unavailable.
	writeLegacy(t, dir, legacyFile)
	clash := New(Options{Store: st, DataDir: dir, ImportTenant: other})
	if p := clash.Persistence(); p.Err == nil || !strings.Contains(p.Err.Error(), "taken by another tenant") {
		t.Errorf("import into a second tenant: %+v", p)
	}
	if _, err := clash.List(as(bg, other, "")); code(err) != CodeStoreUnavailable {
		t.Errorf("list of the import tenant after a failed import: %v", err)
	}
	if l, err := clash.List(as(bg, acme, "")); err != nil || len(l) != 2 {
		t.Errorf("another tenant after a failed import: %+v %v", l, err)
	}
	if got, _ := os.ReadFile(file); string(got) != legacyFile {
		t.Errorf("file changed by a failed import")
	}
}

func TestImportSkipped(t *testing.T) {
	dir := t.TempDir()
	file := writeLegacy(t, dir, legacyFile)
	st := newStore(t)
	acme := addTenant(t, st, "acme")
	for _, c := range []struct {
		name string
		opts Options
		warn string
	}{
		{"no import tenant", Options{Store: st, DefaultTenant: acme, DataDir: dir}, "no tenant to import it into"},
		{"no store", Options{DataDir: dir, ImportTenant: acme}, "no store is configured (the file is left as it is)"},
	} {
		svc := New(c.opts)
		if p := svc.Persistence(); p.Err != nil || !strings.Contains(p.Warning, c.warn) || !strings.Contains(p.Warning, file) {
			t.Errorf("%s: %+v", c.name, p)
		}
		if l, err := svc.List(as(bg, acme, "")); err != nil || len(l) != 0 {
			t.Errorf("%s: imported anyway: %+v %v", c.name, l, err)
		}
		if got, _ := os.ReadFile(file); string(got) != legacyFile {
			t.Errorf("%s: file changed", c.name)
		}
	}
}

// TestImportBrokenFile: a lattices.json that can not be read is reported
// and left alone, and its tenant's stored lattices are unavailable (so
// that nobody works on a registry with lattices silently missing) while
// other tenants and inline lattices work.
func TestImportBrokenFile(t *testing.T) {
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
			file := writeLegacy(t, dir, c.content)
			st := newStore(t)
			acme, other := addTenant(t, st, "acme"), addTenant(t, st, "other")
			svc := New(Options{Store: st, DefaultTenant: acme, DataDir: dir, ImportTenant: acme})
			p := svc.Persistence()
			if p.Err == nil || !strings.Contains(p.Err.Error(), c.msg) || !strings.Contains(p.Err.Error(), file) {
				t.Fatalf("import error %v, want it to name %s and say %q", p.Err, file, c.msg)
			}
			if _, err := svc.Create(bg, "x", Def{Dims: []int64{3}}); code(err) != CodeStoreUnavailable || !strings.Contains(err.Error(), "left as it is") {
				t.Errorf("create in the import tenant: %v", err)
			}
			if _, err := svc.List(bg); code(err) != CodeStoreUnavailable {
				t.Errorf("list in the import tenant: %v", err)
			}
			if err := svc.Delete(bg, "lat_0123456789abcdef"); code(err) != CodeStoreUnavailable {
				t.Errorf("delete in the import tenant: %v", err)
			}
			if _, err := svc.Create(as(bg, other, ""), "x", Def{Dims: []int64{3}}); err != nil {
				t.Errorf("create in another tenant: %v", err)
			}
			// Inline lattices still work.
			if res, err := svc.Path(bg, Target{Def: &Def{Dims: []int64{4, 4}}}, PathRequest{From: []int64{0, 0}, To: []int64{3, 3}}); err != nil || res.Length != 6 {
				t.Errorf("inline path: %+v %v", res, err)
			}
			got, _ := os.ReadFile(file)
			if !bytes.Equal(got, []byte(c.content)) {
				t.Errorf("broken file was modified")
			}
		})
	}
}

func TestMemoryOnly(t *testing.T) {
	svc := New(Options{})
	if p := svc.Persistence(); p.Stored || p.Err != nil || !strings.Contains(p.Warning, "no store is configured") {
		t.Fatalf("persistence %+v", p)
	}
	in, err := svc.Create(bg, "mem", Def{Dims: []int64{3, 3}})
	if err != nil || in.Persisted {
		t.Fatalf("create without a store: %+v %v", in, err)
	}
	if l, err := svc.List(bg); err != nil || len(l) != 1 {
		t.Errorf("list without a store: %v %v", l, err)
	}
	// Still scoped by tenant.
	if l, err := svc.List(as(bg, "t2", "")); err != nil || len(l) != 0 {
		t.Errorf("another tenant without a store: %v %v", l, err)
	}
	if _, err := svc.Get(as(bg, "t2", ""), in.ID); code(err) != CodeNotFound {
		t.Errorf("another tenant's id without a store: %v", err)
	}
}

// TestTenantRequired: with a store, a call without a principal and no
// default tenant can not use stored lattices.
func TestTenantRequired(t *testing.T) {
	svc := New(Options{Store: newStore(t)})
	check := func(what string, err error) {
		t.Helper()
		var se *Error
		if !errors.As(err, &se) || se.Code != CodeTenantRequired || se.Status != 403 || !strings.Contains(se.Message, "no default tenant") {
			t.Errorf("%s without a tenant: %v", what, err)
		}
	}
	_, err := svc.Create(bg, "", Def{Dims: []int64{3}})
	check("create", err)
	_, err = svc.List(bg)
	check("list", err)
	_, err = svc.Get(bg, "lat_0123456789abcdef")
	check("get", err)
	check("delete", svc.Delete(bg, "lat_0123456789abcdef"))
	_, err = svc.Path(bg, Target{ID: "lat_0123456789abcdef"}, PathRequest{From: []int64{0}, To: []int64{1}})
	check("path", err)
	if res, err := svc.Path(bg, Target{Def: &Def{Dims: []int64{4}}}, PathRequest{From: []int64{0}, To: []int64{3}}); err != nil || res.Length != 3 {
		t.Errorf("inline path without a tenant: %+v %v", res, err)
	}
}

func TestStoreFailure(t *testing.T) {
	st := newStore(t)
	fs := &failingStore{Lattices: st}
	svc := New(Options{Store: fs, DefaultTenant: addTenant(t, st, "acme")})
	keep, err := svc.Create(bg, "keep", Def{Dims: []int64{3}})
	if err != nil {
		t.Fatal(err)
	}
	fs.writes.Store(new(error(errors.New("disk on fire"))))
	if _, err := svc.Create(bg, "lost", Def{Dims: []int64{3}}); code(err) != CodeStoreWrite || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("create with failing writes: %v", err)
	}
	if err := svc.Delete(bg, keep.ID); code(err) != CodeStoreWrite {
		t.Errorf("delete with failing writes: %v", err)
	}
	if l, _ := svc.List(bg); len(l) != 1 || l[0].ID != keep.ID {
		t.Errorf("registry changed although the write failed: %+v", l)
	}
	fs.reads.Store(new(error(errors.New("network down"))))
	if _, err := svc.List(bg); code(err) != CodeStoreUnavailable || !strings.Contains(err.Error(), "network down") {
		t.Errorf("list with failing reads: %v", err)
	}
	if _, err := svc.Get(bg, keep.ID); code(err) != CodeStoreUnavailable {
		t.Errorf("get with failing reads: %v", err)
	}
	if _, err := svc.Path(bg, Target{ID: keep.ID}, PathRequest{From: []int64{0}, To: []int64{2}}); code(err) != CodeStoreUnavailable {
		t.Errorf("path with failing reads: %v", err)
	}
	if _, err := svc.Create(bg, "x", Def{Dims: []int64{3}}); code(err) != CodeStoreUnavailable {
		t.Errorf("create with failing reads (the count): %v", err)
	}
}

func TestCreateInUnknownTenant(t *testing.T) {
	svc := New(Options{Store: newStore(t), DefaultTenant: "no-such-tenant"})
	if _, err := svc.Create(bg, "", Def{Dims: []int64{3}}); code(err) != CodeStoreWrite || !strings.Contains(err.Error(), "tenant no-such-tenant does not exist") {
		t.Errorf("create in an unknown tenant: %v", err)
	}
}

// TestMaxLattices: the count is per tenant.
func TestMaxLattices(t *testing.T) {
	var other string
	svc := newSvc(t, func(o *Options) { o.Limits.MaxLattices = 2; other = addTenant(t, o.Store, "other") })
	for range 2 {
		if _, err := svc.Create(bg, "", Def{Dims: []int64{2}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Create(bg, "", Def{Dims: []int64{2}}); code(err) != CodeTooManyLattices || !strings.Contains(err.Error(), "lattice.max_lattices") {
		t.Errorf("third lattice: %v", err)
	}
	if _, err := svc.Create(as(bg, other, ""), "", Def{Dims: []int64{2}}); err != nil {
		t.Errorf("another tenant's first lattice: %v", err)
	}
	off := newSvc(t, func(o *Options) { o.Limits.MaxLattices = 0 })
	if _, err := off.Create(bg, "", Def{Dims: []int64{2}}); code(err) != CodeTooManyLattices || !strings.Contains(err.Error(), "turned off") {
		t.Errorf("storing turned off: %v", err)
	}
}

// TestLimitsApplyToStored: a lattice stored under a larger plan is refused
// once the plan shrinks, and served again when it grows back.
func TestLimitsApplyToStored(t *testing.T) {
	svc := newSvc(t)
	in, err := svc.Create(bg, "", Def{Dims: []int64{100, 100}, Cells: [][]int64{{1, 1}, {2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	req := PathRequest{From: []int64{0, 0}, To: []int64{99, 99}}
	lim := svc.Limits()
	small := lim
	small.MaxPoints = 100
	svc.SetLimits(small)
	if _, err := svc.Path(bg, Target{ID: in.ID}, req); code(err) != CodeTooManyPoints {
		t.Errorf("over max_points: %v", err)
	}
	small = lim
	small.MaxInlineBlockedCells = 1
	svc.SetLimits(small)
	if _, err := svc.Path(bg, Target{ID: in.ID}, req); code(err) != CodeTooManyCells {
		t.Errorf("over max_inline_blocked_cells: %v", err)
	}
	svc.SetLimits(lim)
	if res, err := svc.Path(bg, Target{ID: in.ID}, req); err != nil || res.Length != 198 {
		t.Errorf("back under the limits: %+v %v", res, err)
	}
}

// testPlans: "free" has its own max points, "slow" its own timeout, "pro"
// neither (the configured limits apply).
func testPlans(plan string) Limits {
	switch plan {
	case "free":
		return Limits{MaxPoints: 1000}
	case "slow":
		return Limits{OperationTimeout: time.Nanosecond}
	}
	return Limits{}
}

func TestPlanLimits(t *testing.T) {
	var tenant string
	svc := newSvc(t, func(o *Options) {
		o.PlanLimits = testPlans
		o.Limits.MaxPoints = 1 << 20
		tenant = o.DefaultTenant
	})
	big := Def{Dims: []int64{100, 100}}
	free, pro, slow := as(bg, tenant, "free"), as(bg, tenant, "pro"), as(bg, tenant, "slow")
	_, err := svc.Create(free, "", big)
	if code(err) != CodeTooManyPoints || !strings.Contains(err.Error(), `too many points for the plan "free", which allows at most 1000 (plans.free.lattice_max_points)`) {
		t.Errorf("free plan, 10^4 points: %v", err)
	}
	if _, err := svc.Path(free, Target{Def: &big}, PathRequest{From: []int64{0, 0}, To: []int64{1, 1}}); code(err) != CodeTooManyPoints {
		t.Errorf("free plan, inline: %v", err)
	}
	in, err := svc.Create(pro, "", big)
	if err != nil {
		t.Fatalf("pro plan, 10^4 points: %v", err)
	}
	if _, err := svc.Create(pro, "", Def{Dims: []int64{2000, 1000}}); code(err) != CodeTooManyPoints || !strings.Contains(err.Error(), `plan "pro", which allows at most 1048576 (lattice.max_points)`) {
		t.Errorf("pro plan over the configured limit: %v", err)
	}
	if _, err := svc.Create(bg, "", Def{Dims: []int64{2000, 1000}}); code(err) != CodeTooManyPoints || !strings.Contains(err.Error(), "(lattice.max_points is 1048576)") {
		t.Errorf("no plan over the configured limit: %v", err)
	}
	// The same stored lattice, used on the free plan (a downgrade).
	req := PathRequest{From: []int64{0, 0}, To: []int64{99, 99}}
	if _, err := svc.Path(free, Target{ID: in.ID}, req); code(err) != CodeTooManyPoints {
		t.Errorf("free plan, stored lattice: %v", err)
	}
	if res, err := svc.Path(pro, Target{ID: in.ID}, req); err != nil || res.Length != 198 {
		t.Errorf("pro plan, stored lattice: %+v %v", res, err)
	}
	_, err = svc.Path(slow, Target{ID: in.ID}, PathRequest{From: []int64{0, 0}, To: []int64{99, 99}, Algorithm: "bfs"})
	if code(err) != CodeTimeout || !strings.Contains(err.Error(), `for the plan "slow" (plans.slow.lattice_timeout)`) {
		t.Errorf("slow plan: %v", err)
	}
	// Without PlanLimits every plan gets the configured limits.
	plain := newSvc(t, func(o *Options) { o.Limits.MaxPoints = 1 << 20; tenant = o.DefaultTenant })
	if _, err := plain.Create(as(bg, tenant, "free"), "", big); err != nil {
		t.Errorf("free plan without PlanLimits: %v", err)
	}
}

func TestCanceled(t *testing.T) {
	svc := newSvc(t)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := svc.Path(ctx, Target{Def: &Def{Dims: []int64{100, 100}, Cells: [][]int64{{5, 5}}}}, PathRequest{From: []int64{0, 0}, To: []int64{99, 99}})
	if code(err) != CodeCanceled {
		t.Errorf("canceled by the caller: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	var st store.Lattices
	svc := newSvc(t, func(o *Options) { o.MaxConcurrent = 2; st = o.Store })
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			in, err := svc.Create(bg, "", Def{Dims: []int64{30, 30}, Random: &lattice.RandomBlock{Density: 0.1, Seed: uint64(i)}})
			if err != nil {
				errs <- err
				return
			}
			for range 3 {
				_, err := svc.Path(bg, Target{ID: in.ID}, PathRequest{From: []int64{15, 15}, To: []int64{15, 15}, Catalytic: i%2 == 0})
				if err != nil && code(err) != CodeBlockedEndpoint {
					errs <- err
				}
			}
			if _, err := svc.List(bg); err != nil {
				errs <- err
			}
			if i%2 == 1 {
				if err := svc.Delete(bg, in.ID); err != nil {
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
	l, _ := svc.List(bg)
	if len(l) != 4 {
		t.Errorf("%d lattices left, want 4", len(l))
	}
	if n, err := st.CountLattices(bg, svc.defaultTenant); n != 4 || err != nil {
		t.Errorf("store holds %d lattices (%v)", n, err)
	}
}
