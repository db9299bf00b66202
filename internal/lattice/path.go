package lattice

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Algorithm names (PathOptions.Algorithm, PathResult.Algorithm).
const (
	AlgoAuto          = "auto"
	AlgoClosedForm    = "closed-form"       // nothing blocked: formula
	AlgoBFS           = "bfs"               // dense BFS from the source
	AlgoBidirectional = "bfs-bidirectional" // dense BFS from both ends
	AlgoAStar         = "astar"             // sparse A*, metric heuristic
	AlgoSparseBFS     = "bfs-sparse"        // sparse BFS (ReachableWithin)
)

// PathOptions tune one operation (ShortestPath or ReachableWithin).
type PathOptions struct {
	// Algorithm forces an algorithm; "" or AlgoAuto chooses: the closed form
	// when nothing is blocked; else bidirectional dense BFS if its memory
	// fits the budget, else one-sided dense BFS if that fits, else sparse
	// A*. In catalytic mode auto picks one-sided dense BFS (half the scratch).
	// ReachableWithin accepts auto, closed-form, bfs and bfs-sparse.
	Algorithm string
	// Parallel is the number of worker goroutines for dense BFS levels
	// (0: GOMAXPROCS, 1: single core). Small levels always run on one.
	Parallel int
	// MemoryBudget caps the clean memory of the operation in bytes
	// (0: the lattice's Limits.MemoryBudget).
	MemoryBudget int64
	// Catalytic borrows the dense BFS scratch from Borrow (see catalytic.go)
	// instead of allocating it. Borrow is restored bit-exact before the
	// operation returns, whatever happens; the caller must not touch it
	// meanwhile.
	Catalytic bool
	Borrow    []byte
	// LengthOnly skips building the path.
	LengthOnly bool

	hooks *hooks // tests only
}

// PathResult is the answer of ShortestPath.
type PathResult struct {
	Reachable bool
	Length    int64     // -1 when unreachable
	Path      [][]int64 // from, …, to; nil when unreachable or omitted
	// PathOmitted says why Path is nil although Reachable.
	PathOmitted string
	Algorithm   string
	Visited     int64 // points the search reached
	Workers     int
	Duration    time.Duration
	Memory      MemoryReport
}

// ReachResult is the answer of ReachableWithin.
type ReachResult struct {
	Count     int64 // open points within the radius, the start included
	Radius    int64 // the radius asked for (-1: unlimited)
	Exhausted bool  // the whole component was reached (known for BFS)
	Algorithm string
	Workers   int
	Duration  time.Duration
	Memory    MemoryReport
}

func (l *Lattice) budgetOf(o PathOptions) (int64, error) {
	if o.MemoryBudget < 0 {
		return 0, fmt.Errorf("%w: negative memory budget %d", ErrInvalidOption, o.MemoryBudget)
	}
	if o.Parallel < 0 {
		return 0, fmt.Errorf("%w: negative parallelism %d", ErrInvalidOption, o.Parallel)
	}
	if o.Catalytic && len(o.Borrow) == 0 {
		return 0, fmt.Errorf("%w: catalytic mode needs a region to borrow", ErrInvalidOption)
	}
	if o.MemoryBudget == 0 {
		return l.lim.MemoryBudget, nil
	}
	return o.MemoryBudget, nil
}

func (l *Lattice) endpoint(name string, p []int64) (uint64, error) {
	idx, err := l.index(p)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if l.blocked(idx) {
		return 0, fmt.Errorf("%w: %s %v", ErrBlockedEndpoint, name, p)
	}
	return idx, nil
}

// ShortestPath finds a shortest path from one open point to another.
// An unreachable target is not an error: Reachable is false, Length -1.
func (l *Lattice) ShortestPath(ctx context.Context, from, to []int64, opts PathOptions) (res PathResult, err error) {
	t0 := time.Now()
	m := startMeter()
	budget, err := l.budgetOf(opts)
	if err != nil {
		return res, err
	}
	s, err := l.endpoint("from", from)
	if err != nil {
		return res, err
	}
	t, err := l.endpoint("to", to)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("lattice: %w", err)
	}
	res.Memory.BudgetBytes = budget
	res.Workers = 1
	defer func() {
		res.Duration = time.Since(t0)
		m.finish(l, &res.Memory)
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("lattice: %w", err)
		}
	}()

	algo := opts.Algorithm
	switch algo {
	case "", AlgoAuto:
		switch {
		case s == t || !l.HasBlocking():
			algo = AlgoClosedForm
		case opts.Catalytic:
			algo = AlgoBFS
		default:
			if p, ok := l.planDense(2, budget, listShareClean); ok && p.clean <= budget {
				algo = AlgoBidirectional
			} else if p, ok := l.planDense(1, budget, listShareClean); ok && p.clean <= budget {
				algo = AlgoBFS
			} else {
				algo = AlgoAStar
			}
		}
	case AlgoClosedForm:
		if l.HasBlocking() {
			return res, fmt.Errorf("%w: the closed form needs a lattice with nothing blocked", ErrInvalidOption)
		}
	case AlgoBFS, AlgoBidirectional, AlgoAStar:
	default:
		return res, fmt.Errorf("%w: unknown algorithm %q", ErrInvalidOption, opts.Algorithm)
	}
	res.Algorithm = algo
	if s == t {
		res.Reachable, res.Visited = true, 1
		if l.wantPath(&res, opts, budget) {
			res.Path = l.points([]uint64{s}, &m.acct)
		}
		return res, nil
	}
	if opts.Catalytic && algo != AlgoBFS && algo != AlgoBidirectional {
		res.Memory.CatalyticNote = "not used: " + algo + " needs no dense scratch"
	}

	var idxPath []uint64
	held := int64(0)
	switch algo {
	case AlgoClosedForm:
		res.Reachable, res.Length = true, int64(l.metric(s, t))
		res.Visited = res.Length + 1
		if l.wantPath(&res, opts, budget) {
			idxPath = l.closedPath(s, t)
		}
	case AlgoAStar:
		bud := &memBudget{limit: budget, acct: &m.acct}
		if unreachable, err := l.probeEnclosed(ctx, s, t, bud, opts.hooks); err != nil {
			return res, err
		} else if unreachable {
			res.Length = -1
			break
		}
		n, p, visited, err := l.astar(ctx, s, t, bud, opts.hooks)
		res.Visited = visited
		if err != nil {
			return res, err
		}
		held = bud.held
		if n >= 0 {
			res.Reachable, res.Length = true, n
			if l.wantPath(&res, opts, budget-held) {
				idxPath = p
			}
		} else {
			res.Length = -1
		}
	default:
		sides := 1
		if algo == AlgoBidirectional {
			sides = 2
		}
		idxPath, held, err = l.densePath(ctx, s, t, sides, opts, budget, m, &res)
		if err != nil {
			return res, err
		}
	}
	if idxPath != nil {
		need := l.pathBytes(int64(len(idxPath)))
		if need > budget-held {
			res.PathOmitted = fmt.Sprintf("path of %d points needs %d bytes, over the memory budget", len(idxPath), need)
		} else {
			res.Path = l.points(idxPath, &m.acct)
		}
	}
	return res, nil
}

func (l *Lattice) pathBytes(points int64) int64 {
	return points * (int64(len(l.dims))*8 + 24)
}

// wantPath decides whether to materialise a path of res.Length steps.
func (l *Lattice) wantPath(res *PathResult, opts PathOptions, room int64) bool {
	switch {
	case opts.LengthOnly:
		res.PathOmitted = "LengthOnly was set"
	case res.Length+1 > l.lim.MaxPathPoints:
		res.PathOmitted = fmt.Sprintf("path of %d points is longer than the limit of %d", res.Length+1, l.lim.MaxPathPoints)
	case res.Length < math.MaxInt64/64 && l.pathBytes(res.Length+1)+8*(res.Length+1) > room:
		res.PathOmitted = fmt.Sprintf("path of %d points does not fit the memory budget", res.Length+1)
	default:
		return true
	}
	return false
}

func (l *Lattice) points(idx []uint64, acct *account) [][]int64 {
	d := len(l.dims)
	flat := make([]int64, len(idx)*d)
	out := make([][]int64, len(idx))
	acct.add(int64(len(flat))*8 + int64(len(out))*24)
	for i, v := range idx {
		p := flat[i*d : (i+1)*d : (i+1)*d]
		l.decode(v, p)
		out[i] = p
	}
	return out
}

// closedPath walks axis by axis, each the short way round.
func (l *Lattice) closedPath(s, t uint64) []uint64 {
	path := make([]uint64, 0, l.metric(s, t)+1)
	path = append(path, s)
	u := s
	rs, rt := s, t
	for i := range l.active {
		a := &l.active[i]
		qs, qt := a.div.div(rs), a.div.div(rt)
		xs, xt := rs-qs*a.n, rt-qt*a.n
		rs, rt = qs, qt
		delta := 1
		if xt < xs {
			delta = -1
		}
		steps := a.axisDist(xs, xt)
		if a.periodic && steps != max(xs, xt)-min(xs, xt) {
			delta = -delta // the short way wraps
		}
		x := xs
		for range steps {
			u, _ = a.step(u, x, delta)
			if delta > 0 {
				x = (x + 1) % a.n
			} else {
				x = (x + a.n - 1) % a.n
			}
			path = append(path, u)
		}
	}
	return path
}

// probeEnclosed runs small sparse BFSs from both ends: if either end's
// component is exhausted without meeting the other end, t is unreachable.
// This is the "bidirectional where it pays" of the sparse search: it turns
// the common case of an enclosed endpoint from a budget-exhausting A* into
// an immediate answer.
func (l *Lattice) probeEnclosed(ctx context.Context, s, t uint64, bud *memBudget, h *hooks) (bool, error) {
	const probeCap = 1 << 12
	for _, e := range [][2]uint64{{t, s}, {s, t}} {
		held := bud.held
		_, exhausted, hit, err := l.sparseBFS(ctx, e[0], -1, e[1], probeCap, bud, h)
		bud.give(bud.held - held)
		if err != nil {
			return false, err
		}
		if hit {
			return false, nil
		}
		if exhausted {
			return true, nil
		}
	}
	return false, nil
}

// densePath runs dense BFS (one- or two-sided), in borrowed or clean memory.
// It returns the index path (nil if unreachable or not wanted) and the clean
// bytes held by the search.
func (l *Lattice) densePath(ctx context.Context, s, t uint64, sides int, opts PathOptions, budget int64, m *meter, res *PathResult) (path []uint64, held int64, err error) {
	ds, release, err := l.denseSetup(ctx, sides, opts, budget, m, &res.Memory)
	if err != nil {
		return nil, 0, err
	}
	defer func() { err = errors.Join(err, release()) }()
	e := ds.e
	defer e.closePool()
	res.Workers = e.workers
	a := ds.sides[0]
	l.seed(a, s)
	if sides == 1 {
		e.target, e.hasTarget = t, true
		for !a.exhausted {
			if err := e.level(a, nil); err != nil {
				return nil, held, err
			}
			if e.meet.Load() != 0 {
				break
			}
		}
		res.Visited = a.disc
		if e.meet.Load() == 0 {
			res.Length = -1
			return nil, held, nil
		}
		res.Reachable, res.Length = true, a.depth
		held = ds.heldNow()
		if l.wantPath(res, opts, budget-held) {
			path = e.walk(a, t, a.depth, make([]uint64, 0, a.depth+1))
			m.acct.add(8 * (a.depth + 1))
			reverse(path)
		}
		return path, held, nil
	}
	b := ds.sides[1]
	l.seed(b, t)
	size := [2]int64{1, 1}
	for !a.exhausted && !b.exhausted {
		i := 0
		if size[1] < size[0] {
			i = 1
		}
		x, y := ds.sides[i], ds.sides[1-i]
		before := x.disc
		if err := e.level(x, y); err != nil {
			return nil, held, err
		}
		size[i] = x.disc - before
		if e.meet.Load() != 0 {
			break
		}
	}
	res.Visited = a.disc + b.disc
	v := e.meet.Load()
	if v == 0 {
		res.Length = -1
		return nil, held, nil
	}
	v--
	res.Reachable, res.Length = true, a.depth+b.depth
	held = ds.heldNow()
	if l.wantPath(res, opts, budget-held) {
		path = e.walk(a, v, a.depth, make([]uint64, 0, res.Length+1))
		reverse(path)
		path = e.walk(b, v, b.depth, path)
		path = append(path[:a.depth], path[a.depth+1:]...) // v appears twice
		m.acct.add(8 * (res.Length + 1))
	}
	return path, held, nil
}

// catalyticOverhead is the clean memory catalytic mode itself uses (staging
// buffer, compressor and decompressor state; measured 1.3–2.4 MiB), reserved
// from the budget.
const catalyticOverhead = 3 << 20

type denseState struct {
	e        *dense
	sides    []*side
	held     int64 // clean bytes planned for the search
	budget   int64
	bitsLeft atomic.Int64 // budget left for frontier bitsets
}

// heldNow is the clean memory the search holds, bitsets included.
func (ds *denseState) heldNow() int64 { return ds.budget - ds.bitsLeft.Load() }

// denseSetup allocates or borrows the scratch of a dense search. release
// restores a borrowed region and records it in the report.
func (l *Lattice) denseSetup(ctx context.Context, sides int, opts PathOptions, budget int64, m *meter, rep *MemoryReport) (*denseState, func() error, error) {
	release := func() error { return nil }
	var scratch []uint64
	plan, fits := l.planDense(sides, budget, listShareClean)
	if opts.Catalytic {
		cp, _ := l.planDense(sides, math.MaxInt64, listShareBorrowed)
		bw, sc, err := borrowScratch(ctx, opts.Borrow, cp.scratch, opts.hooks, &m.acct)
		switch {
		case err == nil:
			plan, scratch = cp, sc
			release = func() error {
				rerr := bw.restore()
				bw.report(rep, rerr)
				return rerr
			}
		case errors.Is(err, ErrNotCompressible) && !errors.Is(err, ErrRestoreFailed):
			rep.CatalyticNote = "fell back to clean memory: " + err.Error()
		default:
			return nil, nil, err
		}
	}
	if h := opts.hooks; h != nil && h.listLimit > 0 {
		if scratch == nil {
			plan.listLimit = h.listLimit
		} else {
			plan.listLimit = min(plan.listLimit, h.listLimit) // leaves part of the scratch unused
		}
	}
	ds := &denseState{budget: budget}
	if scratch == nil {
		if !fits || plan.clean > budget {
			return nil, nil, fmt.Errorf("%w: dense BFS on %d points needs at least %d bytes (%d per side for the code array), budget %d",
				ErrMemoryBudget, l.n, int64(sides)*int64(plan.words)*8+int64(sides)*2*minListLimit*8, int64(plan.words)*8, budget)
		}
		ds.held = plan.clean
	} else {
		ds.held = catalyticOverhead
	}
	rep.ScratchBytes = plan.scratch
	ds.bitsLeft.Store(budget - ds.held)
	var getBits func() []uint64
	if opts.hooks == nil || !opts.hooks.noBits {
		words := int((l.n + 63) / 64)
		getBits = func() []uint64 {
			need := int64(words) * 8
			if ds.bitsLeft.Add(-need) < 0 {
				ds.bitsLeft.Add(need)
				return nil
			}
			m.acct.add(need)
			return make([]uint64, words)
		}
	}
	ds.sides = l.newSides(plan, scratch, &m.acct, getBits)
	ds.e = &dense{l: l, ctx: ctx, done: ctx.Done(), workers: workersFor(opts.Parallel), kernel: cpuKernel{}, hooks: opts.hooks}
	return ds, release, nil
}
