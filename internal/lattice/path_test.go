package lattice

import (
	"context"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

var bg = context.Background()

func mustNew(t testing.TB, s Spec) *Lattice {
	t.Helper()
	l, err := New(s, Limits{})
	if err != nil {
		t.Fatalf("New(%s): %v", specString(s), err)
	}
	return l
}

func TestFastDivisor(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ns := []uint64{1, 2, 3, 5, 7, 10, 1000, 1 << 20, 1<<31 - 1, 1 << 31, 1<<61 - 1, 1 << 61, 1 << 62}
	for range 200 {
		ns = append(ns, 1+r.Uint64N(1<<62), 1+r.Uint64N(1<<20))
	}
	for _, n := range ns {
		d := newDivisor(n)
		xs := []uint64{0, 1, n - 1, n, n + 1, 1<<62 - 1, (1<<62 - 1) / n * n, (1<<62-1)/n*n - 1}
		for range 200 {
			xs = append(xs, r.Uint64N(1<<62))
		}
		for _, x := range xs {
			if x >= 1<<62 {
				continue
			}
			if got, want := d.div(x), x/n; got != want {
				t.Fatalf("%d / %d = %d, want %d", x, n, got, want)
			}
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	big := make([]int64, 33)
	for i := range big {
		big[i] = 1
	}
	cases := []struct {
		name string
		spec Spec
		lim  Limits
		want error
	}{
		{"no dims", Spec{}, Limits{}, ErrInvalidSpec},
		{"33 dims", Spec{Dims: big}, Limits{}, ErrInvalidSpec},
		{"zero size", Spec{Dims: []int64{3, 0}}, Limits{}, ErrInvalidSpec},
		{"negative size", Spec{Dims: []int64{-4}}, Limits{}, ErrInvalidSpec},
		{"over 2^62", Spec{Dims: []int64{1 << 31, 1 << 31, 2}}, Limits{}, ErrTooManyPoints},
		{"over 2^62 by overflow", Spec{Dims: []int64{1 << 40, 1 << 40}}, Limits{}, ErrTooManyPoints},
		{"over caller limit", Spec{Dims: []int64{1000, 1001}}, Limits{MaxPoints: 1_000_000}, ErrTooManyPoints},
		{"density < 0", Spec{Dims: []int64{4}, Blocked: Blocking{Random: &RandomBlock{Density: -0.1}}}, Limits{}, ErrDensity},
		{"density > 1", Spec{Dims: []int64{4}, Blocked: Blocking{Random: &RandomBlock{Density: 1.5}}}, Limits{}, ErrDensity},
		{"density NaN", Spec{Dims: []int64{4}, Blocked: Blocking{Random: &RandomBlock{Density: math.NaN()}}}, Limits{}, ErrDensity},
		{"cell wrong dimension", Spec{Dims: []int64{4, 4}, Blocked: Blocking{Cells: [][]int64{{1}}}}, Limits{}, ErrDimension},
		{"cell out of bounds", Spec{Dims: []int64{4, 4}, Blocked: Blocking{Cells: [][]int64{{1, 4}}}}, Limits{}, ErrOutOfBounds},
		{"too many cells", Spec{Dims: []int64{4, 4}, Blocked: Blocking{Cells: [][]int64{{1, 1}, {2, 2}}}}, Limits{MaxBlockedCells: 1}, ErrInvalidSpec},
	}
	for _, c := range cases {
		if _, err := New(c.spec, c.lim); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if l, err := New(Spec{Dims: []int64{1 << 31, 1 << 31}}, Limits{}); err != nil || l.Points() != 1<<62 {
		t.Fatalf("2^62 points: %v", err)
	}
	if l, err := New(Spec{Dims: big[:32]}, Limits{}); err != nil || l.Points() != 1 {
		t.Fatalf("32 dims: %v", err)
	}
}

func TestOperationsRejectBadInput(t *testing.T) {
	l := mustNew(t, Spec{Dims: []int64{10, 10}, Blocked: Blocking{Cells: [][]int64{{5, 5}}}})
	ok := []int64{0, 0}
	cases := []struct {
		name     string
		from, to []int64
		opts     PathOptions
		want     error
	}{
		{"wrong dimension", []int64{1}, ok, PathOptions{}, ErrDimension},
		{"too many coordinates", ok, []int64{1, 2, 3}, PathOptions{}, ErrDimension},
		{"out of bounds", []int64{10, 0}, ok, PathOptions{}, ErrOutOfBounds},
		{"negative", ok, []int64{0, -1}, PathOptions{}, ErrOutOfBounds},
		{"blocked endpoint", ok, []int64{5, 5}, PathOptions{}, ErrBlockedEndpoint},
		{"negative budget", ok, []int64{1, 1}, PathOptions{MemoryBudget: -1}, ErrInvalidOption},
		{"catalytic without region", ok, []int64{1, 1}, PathOptions{Catalytic: true}, ErrInvalidOption},
		{"unknown algorithm", ok, []int64{1, 1}, PathOptions{Algorithm: "dijkstra"}, ErrInvalidOption},
		{"closed form on a blocked lattice", ok, []int64{1, 1}, PathOptions{Algorithm: AlgoClosedForm}, ErrInvalidOption},
	}
	for _, c := range cases {
		if _, err := l.ShortestPath(bg, c.from, c.to, c.opts); !errors.Is(err, c.want) {
			t.Errorf("ShortestPath %s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := l.ReachableWithin(bg, []int64{5, 5}, 3, PathOptions{}); !errors.Is(err, ErrBlockedEndpoint) {
		t.Errorf("ReachableWithin blocked: %v", err)
	}
	if _, err := l.ReachableWithin(bg, ok, 3, PathOptions{Algorithm: AlgoAStar}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("ReachableWithin astar: %v", err)
	}
	if _, err := l.Distance(ok, []int64{1}); !errors.Is(err, ErrDimension) {
		t.Errorf("Distance: %v", err)
	}
	if _, err := l.Neighbours([]int64{0, 10}); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("Neighbours: %v", err)
	}
	full := mustNew(t, Spec{Dims: []int64{10}, Blocked: Blocking{Random: &RandomBlock{Density: 1}}})
	if _, err := full.ShortestPath(bg, []int64{0}, []int64{9}, PathOptions{}); !errors.Is(err, ErrBlockedEndpoint) {
		t.Errorf("density 1: %v", err)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		s := randSpec(r, 6, 1000, 0)
		l := mustNew(t, s)
		for range 20 {
			p := randPoint(r, s.Dims)
			idx, err := l.Index(p)
			if err != nil {
				t.Fatal(err)
			}
			q, err := l.Point(idx)
			if err != nil || !slices.Equal(p, q) {
				t.Fatalf("%v → %d → %v (%v)", p, idx, q, err)
			}
		}
	}
}

// densityMatches checks the random blocking frequency.
func TestRandomBlockingDensity(t *testing.T) {
	for _, d := range []float64{0, 0.01, 0.2, 0.5, 0.99, 1} {
		l := mustNew(t, Spec{Dims: []int64{100000}, Blocked: Blocking{Random: &RandomBlock{Density: d, Seed: 7}}})
		c, err := l.Census(bg, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := 1 - float64(c.Vertices)/1e5
		if math.Abs(got-d) > 0.01 {
			t.Errorf("density %v: measured %v", d, got)
		}
	}
	a := mustNew(t, Spec{Dims: []int64{50, 50}, Blocked: Blocking{Random: &RandomBlock{Density: 0.3, Seed: 1}}})
	b := mustNew(t, Spec{Dims: []int64{50, 50}, Blocked: Blocking{Random: &RandomBlock{Density: 0.3, Seed: 2}}})
	same := 0
	for x := range int64(50) {
		for y := range int64(50) {
			ba, _ := a.IsBlocked([]int64{x, y})
			bb, _ := b.IsBlocked([]int64{x, y})
			if ba == bb {
				same++
			}
		}
	}
	if same > 2500*7/10 { // independent: P(same) = 0.3² + 0.7² = 0.58
		t.Errorf("seeds 1 and 2 agree on %d of 2500 points", same)
	}
}

var pathAlgos = []string{AlgoAuto, AlgoBFS, AlgoBidirectional, AlgoAStar}

// With nothing blocked the length is the (periodic) Manhattan distance,
// whatever the algorithm, and every path is valid.
func TestUnblockedLengthIsMetric(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 150 {
		s := randSpec(r, 4, 14, 0)
		l := mustNew(t, s)
		a, b := randPoint(r, s.Dims), randPoint(r, s.Dims)
		want := int64(0)
		for i, n := range s.Dims {
			d := a[i] - b[i]
			if d < 0 {
				d = -d
			}
			if s.Periodic {
				d = min(d, n-d)
			}
			want += d
		}
		if got, _ := l.Distance(a, b); got != want {
			t.Fatalf("%s: Distance(%v, %v) = %d, want %d", specString(s), a, b, got, want)
		}
		for _, algo := range append([]string{AlgoClosedForm}, pathAlgos...) {
			res, err := l.ShortestPath(bg, a, b, PathOptions{Algorithm: algo})
			if err != nil {
				t.Fatalf("%s %s: %v", specString(s), algo, err)
			}
			if res.Length != want {
				t.Fatalf("%s %s %v→%v: length %d, want %d", specString(s), algo, a, b, res.Length, want)
			}
			checkPath(t, l, s, a, b, res)
		}
	}
}

// On small blocked lattices every algorithm agrees with a plain reference
// BFS, serial and parallel, with and without scan mode; paths are valid.
func TestBlockedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	variants := []struct {
		name string
		opts PathOptions
	}{
		{"serial", PathOptions{Parallel: 1}},
		{"parallel", PathOptions{Parallel: 4, hooks: &hooks{chunk: 3, parMin: 2}}},
		{"bits", PathOptions{Parallel: 1, hooks: &hooks{listLimit: 2}}},
		{"parallel-bits", PathOptions{Parallel: 3, hooks: &hooks{chunk: 1, parMin: 1, listLimit: 3}}},
		{"scan", PathOptions{Parallel: 1, hooks: &hooks{listLimit: 2, noBits: true}}},
		{"parallel-scan", PathOptions{Parallel: 3, hooks: &hooks{chunk: 1, parMin: 1, listLimit: 3, noBits: true}}},
	}
	unreachable := 0
	for range 80 {
		s := randSpec(r, 4, 12, 0.5)
		if r.IntN(4) == 0 {
			s.Blocked.Cells = [][]int64{randPoint(r, s.Dims), randPoint(r, s.Dims)}
		}
		l := mustNew(t, s)
		from := randOpen(r, l)
		if from == nil {
			continue
		}
		ref := refBFS(t, l, s, from)
		for range 3 {
			to := randOpen(r, l)
			if to == nil {
				continue
			}
			want, reach := ref[key(to)]
			if !reach {
				unreachable++
			}
			for _, algo := range pathAlgos {
				for _, v := range variants {
					opts := v.opts
					opts.Algorithm = algo
					res, err := l.ShortestPath(bg, from, to, opts)
					if err != nil {
						t.Fatalf("%s %s/%s: %v", specString(s), algo, v.name, err)
					}
					if res.Reachable != reach || reach && res.Length != want || !reach && res.Length != -1 {
						t.Fatalf("%s %s/%s %v→%v: got reachable=%v length=%d, reference %v %d",
							specString(s), algo, v.name, from, to, res.Reachable, res.Length, reach, want)
					}
					if reach {
						checkPath(t, l, s, from, to, res)
					} else if res.Path != nil {
						t.Fatalf("unreachable with a path")
					}
				}
			}
		}
		// reachability counts against the reference
		for _, radius := range []int64{0, 1, 2, 5, -1} {
			want := int64(0)
			for _, d := range ref {
				if radius < 0 || d <= radius {
					want++
				}
			}
			for _, algo := range []string{AlgoAuto, AlgoBFS, AlgoSparseBFS} {
				for _, v := range variants {
					opts := v.opts
					opts.Algorithm = algo
					res, err := l.ReachableWithin(bg, from, radius, opts)
					if err != nil {
						t.Fatal(err)
					}
					if res.Count != want {
						t.Fatalf("%s from %v radius %d %s/%s: count %d, reference %d", specString(s), from, radius, algo, v.name, res.Count, want)
					}
					if radius < 0 && !res.Exhausted {
						t.Fatalf("unlimited radius not exhausted")
					}
				}
			}
		}
	}
	if unreachable == 0 {
		t.Errorf("no unreachable pair was exercised")
	}
}

// The unblocked closed-form count equals a BFS count on the same lattice.
func TestBallCountMatchesBFS(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 100 {
		s := randSpec(r, 4, 12, 0)
		l := mustNew(t, s)
		p := randPoint(r, s.Dims)
		for _, radius := range []int64{0, 1, 3, 7, 100, -1} {
			a, err := l.ReachableWithin(bg, p, radius, PathOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := l.ReachableWithin(bg, p, radius, PathOptions{Algorithm: AlgoBFS})
			if err != nil {
				t.Fatal(err)
			}
			if a.Algorithm != AlgoClosedForm || a.Count != b.Count {
				t.Fatalf("%s %v r=%d: %s %d vs bfs %d", specString(s), p, radius, a.Algorithm, a.Count, b.Count)
			}
		}
	}
	// a huge lattice: compare against the sparse BFS for a small radius
	l := mustNew(t, Spec{Dims: []int64{1 << 20, 1 << 21, 1 << 21}, Periodic: true})
	p := []int64{5, 1 << 20, 7}
	a, err := l.ReachableWithin(bg, p, 20, PathOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.ReachableWithin(bg, p, 20, PathOptions{Algorithm: AlgoSparseBFS})
	if err != nil {
		t.Fatal(err)
	}
	// octahedral numbers: Σ_{k≤r} (number of points at L1 distance k in Z³)
	want := int64(0)
	for k := int64(0); k <= 20; k++ {
		if k == 0 {
			want++
		} else {
			want += 4*k*k + 2
		}
	}
	if a.Count != want || b.Count != want {
		t.Fatalf("huge lattice radius 20: closed form %d, sparse %d, want %d", a.Count, b.Count, want)
	}
}

func TestHugeLattice(t *testing.T) {
	spec := Spec{Dims: []int64{1 << 31, 1 << 31}, Blocked: Blocking{Random: &RandomBlock{Density: 0.2, Seed: 42}}}
	l := mustNew(t, spec)
	r := rand.New(rand.NewPCG(11, 12))
	for range 10 {
		a := []int64{1<<30 + r.Int64N(100), 1<<30 + r.Int64N(100)}
		b := []int64{a[0] + r.Int64N(60) - 30, a[1] + r.Int64N(60) - 30}
		if x, _ := l.IsBlocked(a); x {
			continue
		}
		if x, _ := l.IsBlocked(b); x {
			continue
		}
		res, err := l.ShortestPath(bg, a, b, PathOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Algorithm != AlgoAStar {
			t.Fatalf("algorithm %s on 2^62 points", res.Algorithm)
		}
		d, _ := l.Distance(a, b)
		if res.Reachable {
			checkPath(t, l, spec, a, b, res)
			if res.Length < d {
				t.Fatalf("length %d below the metric %d", res.Length, d)
			}
		}
		// compare with the reference BFS restricted to a window: the dense
		// BFS on a sub-lattice cannot be shorter than on the whole lattice.
	}
	// an enclosed target is reported unreachable at once (probe), not by
	// exhausting the budget
	c := []int64{1 << 30, 1 << 30}
	cells := [][]int64{{c[0] - 1, c[1]}, {c[0] + 1, c[1]}, {c[0], c[1] - 1}, {c[0], c[1] + 1}}
	walled := mustNew(t, Spec{Dims: []int64{1 << 31, 1 << 31}, Blocked: Blocking{Cells: cells}})
	res, err := walled.ShortestPath(bg, []int64{0, 0}, c, PathOptions{MemoryBudget: 1 << 20})
	if err != nil || res.Reachable || res.Length != -1 {
		t.Fatalf("enclosed target: %+v %v", res, err)
	}
	// without blocking the closed form answers for any distance
	open := mustNew(t, Spec{Dims: []int64{1 << 31, 1 << 31}, Periodic: true})
	res, err = open.ShortestPath(bg, []int64{0, 0}, []int64{1<<31 - 1, 1 << 30}, PathOptions{})
	if err != nil || res.Length != 1+1<<30 || res.Path != nil || res.PathOmitted == "" {
		t.Fatalf("closed form on a torus: %+v %v", res, err)
	}
	// the explicit sizes are astronomically large but finite
	e := open.ExplicitSize()
	if e.MatrixBytes != math.Ldexp(1, 124-3) || !e.Exact {
		t.Fatalf("explicit size %+v", e)
	}
	if _, err := l.ShortestPath(bg, []int64{0, 0}, []int64{1 << 30, 1 << 30}, PathOptions{MemoryBudget: 1 << 20}); !errors.Is(err, ErrMemoryBudget) {
		t.Fatalf("far target in 1 MiB: %v", err)
	}
}

func TestMemoryBudgetSelectsAlgorithm(t *testing.T) {
	spec := Spec{Dims: []int64{300, 300}, Blocked: Blocking{Random: &RandomBlock{Density: 0.2, Seed: 3}}}
	l := mustNew(t, spec)
	r := rand.New(rand.NewPCG(15, 16))
	// code arrays: 2813 words = 22504 bytes per side
	for _, c := range []struct {
		budget int64
		algo   string
		near   bool
	}{{1 << 30, AlgoBidirectional, false}, {30000, AlgoBFS, false}, {23000, AlgoAStar, true}} {
		for range 5 {
			a, b := randOpen(r, l), randOpen(r, l)
			if c.near {
				b = []int64{min(a[0]+3, 299), min(a[1]+2, 299)}
				if bl, _ := l.IsBlocked(b); bl {
					continue
				}
			}
			ref, err := l.ShortestPath(bg, a, b, PathOptions{Algorithm: AlgoBFS})
			if err != nil {
				t.Fatal(err)
			}
			res, err := l.ShortestPath(bg, a, b, PathOptions{MemoryBudget: c.budget})
			if err != nil {
				t.Fatalf("budget %d: %v", c.budget, err)
			}
			if res.Algorithm != c.algo {
				t.Errorf("budget %d: %s, want %s", c.budget, res.Algorithm, c.algo)
			}
			if res.Length != ref.Length {
				t.Errorf("budget %d: length %d, want %d", c.budget, res.Length, ref.Length)
			}
			if res.Memory.AccountedPeakBytes > c.budget {
				t.Errorf("budget %d: accounted peak %d bytes", c.budget, res.Memory.AccountedPeakBytes)
			}
		}
	}
	if _, err := l.ShortestPath(bg, []int64{0, 0}, []int64{299, 299}, PathOptions{MemoryBudget: 1000, Algorithm: AlgoBFS}); !errors.Is(err, ErrMemoryBudget) && !errors.Is(err, ErrBlockedEndpoint) {
		t.Errorf("forced BFS in 1000 bytes: %v", err)
	}
}

func TestCancellation(t *testing.T) {
	l := mustNew(t, Spec{Dims: []int64{400, 400}, Blocked: Blocking{Random: &RandomBlock{Density: 0.1, Seed: 3}}})
	p := randOpen(rand.New(rand.NewPCG(1, 1)), l)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := l.ReachableWithin(ctx, p, -1, PathOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("pre-cancelled: %v", err)
	}
	for _, algo := range []string{AlgoBFS, AlgoSparseBFS} {
		ctx, cancel := context.WithCancel(bg)
		h := &hooks{onProgress: func(n int64) {
			if n > 5000 {
				cancel()
			}
		}}
		if algo == AlgoSparseBFS {
			h = &hooks{failAfter: 5000}
		}
		_, err := l.ReachableWithin(ctx, p, -1, PathOptions{Algorithm: algo, hooks: h, Parallel: 2})
		cancel()
		if algo == AlgoBFS && !errors.Is(err, context.Canceled) || algo == AlgoSparseBFS && !errors.Is(err, errInjected) {
			t.Fatalf("%s: %v", algo, err)
		}
	}
}

func TestNeighbours(t *testing.T) {
	l := mustNew(t, Spec{Dims: []int64{3, 2, 1}, Periodic: true, Blocked: Blocking{Cells: [][]int64{{1, 0, 0}}}})
	ns, err := l.Neighbours([]int64{0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	want := []Neighbour{
		{Point: []int64{2, 0, 0}, Axis: 0, Step: -1},
		{Point: []int64{1, 0, 0}, Axis: 0, Step: 1, Blocked: true},
		{Point: []int64{0, 1, 0}, Axis: 1, Step: 1},
	}
	if len(ns) != len(want) {
		t.Fatalf("%+v", ns)
	}
	for i := range ns {
		if !slices.Equal(ns[i].Point, want[i].Point) || ns[i].Axis != want[i].Axis || ns[i].Step != want[i].Step || ns[i].Blocked != want[i].Blocked {
			t.Fatalf("neighbour %d: %+v, want %+v", i, ns[i], want[i])
		}
	}
}

// The explicit-graph figures equal a brute-force count, and the adjacency
// list figure equals the bytes of a CSR actually built.
func TestExplicitSize(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 60 {
		s := randSpec(r, 3, 10, 0)
		switch r.IntN(3) {
		case 1:
			for range 5 {
				s.Blocked.Cells = append(s.Blocked.Cells, randPoint(r, s.Dims))
			}
		case 2:
			s.Blocked.Random = &RandomBlock{Density: 0.3, Seed: r.Uint64()}
		}
		l := mustNew(t, s)
		g := buildCSR(l)
		e := l.ExplicitSize()
		if s.Blocked.Random != nil {
			if e.Exact {
				t.Fatal("random blocking reported exact before census")
			}
			if _, err := l.Census(bg, 2); err != nil {
				t.Fatal(err)
			}
			e = l.ExplicitSize()
		}
		if !e.Exact || e.Vertices != float64(g.vertices()) || e.Edges != float64(len(g.adj)/2) {
			t.Fatalf("%s: explicit %+v, brute force V=%d E=%d", specString(s), e, g.vertices(), len(g.adj)/2)
		}
		if e.ListBytes != float64(g.bytes()) {
			t.Fatalf("%s: ListBytes %v, CSR built %d", specString(s), e.ListBytes, g.bytes())
		}
		v := new(big.Float).SetFloat64(e.Vertices)
		if m, _ := new(big.Float).Quo(new(big.Float).Mul(v, v), big.NewFloat(8)).Float64(); m != e.MatrixBytes {
			t.Fatalf("matrix bytes %v vs %v", e.MatrixBytes, m)
		}
	}
}
