package lattice

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReachableWithin counts the open points at most radius steps from p
// (radius < 0: no limit, i.e. the size of p's component). With nothing
// blocked it is a closed-form count (a convolution over the axes, O(d·r)
// time and 16·r bytes, or simply all points once r reaches the eccentricity);
// otherwise dense BFS when its memory fits the budget (or catalytic mode),
// else sparse BFS.
func (l *Lattice) ReachableWithin(ctx context.Context, p []int64, radius int64, opts PathOptions) (res ReachResult, err error) {
	t0 := time.Now()
	m := startMeter()
	budget, err := l.budgetOf(opts)
	if err != nil {
		return res, err
	}
	s, err := l.endpoint("start", p)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("lattice: %w", err)
	}
	if radius < 0 {
		radius = -1
	}
	res.Radius, res.Workers = radius, 1
	res.Memory.BudgetBytes = budget
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
		case !l.HasBlocking():
			algo = AlgoClosedForm
		case opts.Catalytic:
			algo = AlgoBFS
		default:
			if p, ok := l.planDense(1, budget, listShareClean); ok && p.clean <= budget {
				algo = AlgoBFS
			} else {
				algo = AlgoSparseBFS
			}
		}
	case AlgoClosedForm:
		if l.HasBlocking() {
			return res, fmt.Errorf("%w: the closed form needs a lattice with nothing blocked", ErrInvalidOption)
		}
	case AlgoBFS, AlgoSparseBFS:
	default:
		return res, fmt.Errorf("%w: algorithm %q cannot count reachable points", ErrInvalidOption, opts.Algorithm)
	}
	res.Algorithm = algo
	if opts.Catalytic && algo != AlgoBFS {
		res.Memory.CatalyticNote = "not used: " + algo + " needs no dense scratch"
	}
	switch algo {
	case AlgoClosedForm:
		n, err := l.ballCount(ctx, s, radius, &memBudget{limit: budget, acct: &m.acct})
		if err != nil {
			return res, err
		}
		res.Count = int64(n)
		res.Exhausted = n == l.n
	case AlgoSparseBFS:
		bud := &memBudget{limit: budget, acct: &m.acct}
		res.Count, res.Exhausted, _, err = l.sparseBFS(ctx, s, radius, ^uint64(0), 0, bud, opts.hooks)
		if err != nil {
			return res, err
		}
	default:
		res.Count, res.Exhausted, res.Workers, err = l.denseReach(ctx, s, radius, opts, budget, m, &res.Memory)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func (l *Lattice) denseReach(ctx context.Context, s uint64, radius int64, opts PathOptions, budget int64, m *meter, rep *MemoryReport) (count int64, exhausted bool, workers int, err error) {
	ds, release, err := l.denseSetup(ctx, 1, opts, budget, m, rep)
	if err != nil {
		return 0, false, 0, err
	}
	defer func() { err = errors.Join(err, release()) }()
	defer ds.e.closePool()
	a := ds.sides[0]
	l.seed(a, s)
	for !a.exhausted && (radius < 0 || a.depth < radius) {
		if err := ds.e.level(a, nil); err != nil {
			return a.disc, false, ds.e.workers, err
		}
	}
	return a.disc, a.exhausted, ds.e.workers, nil
}

// ballCount counts lattice points within L1 (periodic) distance r of s with
// nothing blocked. Per axis, the number of offsets at distance t is
// [t=0] + [1≤t≤A] + [1≤t≤B] (A, B: room to each side, or the two halves of a
// ring); the d-dimensional count is their convolution, computed with prefix
// sums in O(d·r).
func (l *Lattice) ballCount(ctx context.Context, s uint64, r int64, bud *memBudget) (uint64, error) {
	type ab struct{ a, b uint64 }
	axes := make([]ab, 0, len(l.active))
	var ecc uint64
	rem := s
	for i := range l.active {
		a := &l.active[i]
		q := a.div.div(rem)
		x := rem - q*a.n
		rem = q
		var v ab
		if a.periodic {
			v = ab{a.n / 2, (a.n - 1) / 2}
		} else {
			v = ab{x, a.n - 1 - x}
		}
		axes = append(axes, v)
		ecc += max(v.a, v.b)
	}
	if r < 0 || uint64(r) >= ecc {
		return l.n, nil
	}
	if err := bud.take(16*(r+1), "closed-form count"); err != nil {
		return 0, err
	}
	dp := make([]uint64, r+1)
	pre := make([]uint64, r+1)
	dp[0] = 1
	prefix := func(j int64) uint64 { // Σ dp[0..j], 0 for j < 0
		if j < 0 {
			return 0
		}
		return pre[j]
	}
	for k, v := range axes {
		if k%4 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var acc uint64
		for j := range dp {
			acc += dp[j]
			pre[j] = acc
		}
		for j := int64(0); j <= r; j++ {
			n := pre[j] - prefix(j-1) // dp[j]
			n += prefix(j-1) - prefix(j-1-int64(v.a))
			n += prefix(j-1) - prefix(j-1-int64(v.b))
			dp[j] = n
		}
	}
	var total uint64
	for _, c := range dp {
		total += c
	}
	return total, nil
}
