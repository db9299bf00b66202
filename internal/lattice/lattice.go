// Package lattice is a pure-Go engine for box lattices Z_{n1} × … × Z_{nd}
// with open or periodic boundaries, axis-aligned neighbours and blocked cells
// that are either an explicit sparse list or decided per point by a hash.
//
// Nothing is stored per point unless an algorithm needs it: a lattice value
// holds its dimensions, its blocking rule and (for explicit blocked cells) a
// set of those cells. Shortest paths use a closed form when nothing is
// blocked, a dense breadth-first search (2 bits per point and side) when that
// fits the memory budget, and a sparse A* otherwise. The dense search may
// borrow its scratch memory from a caller's region (catalytic mode, see
// catalytic.go). Every operation honours a context and a memory budget and
// reports its memory use next to what an explicit graph would need.
//
// The package does no I/O. See docs/lattice.md.
package lattice

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"
)

// MaxDims is the largest number of axes a lattice may have.
const MaxDims = 32

// MaxTotalPoints is the largest number of points any lattice may have (2^62).
const MaxTotalPoints int64 = 1 << 62

// Defaults used when a Limits field is zero.
const (
	DefaultMaxBlockedCells = 1 << 20
	DefaultMemoryBudget    = 512 << 20
	DefaultMaxPathPoints   = 1 << 20
)

// Errors. Every error returned by this package wraps one of these (test with
// errors.Is), except context errors, which are returned wrapped as well.
var (
	ErrInvalidSpec     = errors.New("lattice: invalid specification")
	ErrTooManyPoints   = errors.New("lattice: too many points")
	ErrDimension       = errors.New("lattice: wrong number of coordinates")
	ErrOutOfBounds     = errors.New("lattice: coordinate out of bounds")
	ErrBlockedEndpoint = errors.New("lattice: endpoint is blocked")
	ErrDensity         = errors.New("lattice: density outside [0, 1]")
	ErrMemoryBudget    = errors.New("lattice: memory budget exceeded")
	ErrInvalidOption   = errors.New("lattice: invalid option")
	ErrTransform       = errors.New("lattice: invalid transform")
	// ErrRestoreFailed means a borrowed region could not be restored bit-exact.
	// It never happens unless memory is corrupted or the caller wrote to the
	// region during the operation; it is reported, never hidden.
	ErrRestoreFailed = errors.New("lattice: borrowed region NOT restored")
)

// Spec describes a lattice.
type Spec struct {
	// Dims are the axis lengths n1 … nd, each ≥ 1, 1 ≤ d ≤ 32.
	Dims []int64
	// Periodic makes every axis wrap around (a torus). An axis of length 1 or
	// 2 has the same neighbours either way.
	Periodic bool
	// Blocked cells cannot be entered.
	Blocked Blocking
}

// Blocking says which cells are blocked. Both parts may be given; a cell is
// blocked if either says so.
type Blocking struct {
	// Cells is an explicit sparse list of blocked points (duplicates allowed).
	Cells [][]int64
	// Random blocks each point independently with probability Density,
	// decided by a hash of (Seed, the point's linear index).
	Random *RandomBlock
}

// RandomBlock is implicit random blocking: no storage grows with the lattice.
type RandomBlock struct {
	Density float64 // in [0, 1]
	Seed    uint64
}

// Limits bound what a lattice may cost.
type Limits struct {
	// MaxPoints caps the product of the dimensions (0: MaxTotalPoints).
	MaxPoints int64
	// MaxBlockedCells caps len(Spec.Blocked.Cells) (0: DefaultMaxBlockedCells).
	MaxBlockedCells int
	// MemoryBudget is the default clean-memory budget of an operation, in
	// bytes, when its options give none (0: DefaultMemoryBudget).
	MemoryBudget int64
	// MaxPathPoints caps the number of points returned in a path; longer
	// paths are reported by length only (0: DefaultMaxPathPoints).
	MaxPathPoints int64
}

// axis is one axis with its precomputed divisor.
type axis struct {
	dim      int // index in Dims
	n        uint64
	stride   uint64
	div      divisor
	periodic bool // periodic and n >= 3 (n ≤ 2 is the same graph as open)
}

// Lattice is an immutable lattice. It is safe for concurrent use.
type Lattice struct {
	dims     []int64
	periodic bool
	n        uint64  // total points
	all      []axis  // every axis, in Dims order
	active   []axis  // axes with n >= 2 (the only ones with neighbours)
	random   bool    // random blocking with a nonzero threshold
	density  float64 // random density (0 if none)
	thr      uint64  // blocked iff mix(idx) <= thr (when random)
	seedMix  uint64
	cells    map[uint64]struct{} // explicit blocked cells (nil if none)
	lim      Limits

	censusMu sync.Mutex
	census   *Census
}

// New validates spec against lim and returns the lattice.
func New(spec Spec, lim Limits) (*Lattice, error) {
	if lim.MaxPoints <= 0 || lim.MaxPoints > MaxTotalPoints {
		lim.MaxPoints = MaxTotalPoints
	}
	if lim.MaxBlockedCells <= 0 {
		lim.MaxBlockedCells = DefaultMaxBlockedCells
	}
	if lim.MemoryBudget <= 0 {
		lim.MemoryBudget = DefaultMemoryBudget
	}
	if lim.MaxPathPoints <= 0 {
		lim.MaxPathPoints = DefaultMaxPathPoints
	}
	d := len(spec.Dims)
	if d == 0 {
		return nil, fmt.Errorf("%w: no dimensions (need 1 to %d)", ErrInvalidSpec, MaxDims)
	}
	if d > MaxDims {
		return nil, fmt.Errorf("%w: %d dimensions (at most %d)", ErrInvalidSpec, d, MaxDims)
	}
	l := &Lattice{dims: append([]int64(nil), spec.Dims...), periodic: spec.Periodic, lim: lim}
	total := uint64(1)
	for i, n := range spec.Dims {
		if n <= 0 {
			return nil, fmt.Errorf("%w: dimension %d has size %d (must be ≥ 1)", ErrInvalidSpec, i, n)
		}
		hi, lo := bits.Mul64(total, uint64(n))
		if hi != 0 || lo > uint64(lim.MaxPoints) {
			return nil, fmt.Errorf("%w: %v has more than %d points", ErrTooManyPoints, spec.Dims, lim.MaxPoints)
		}
		ax := axis{dim: i, n: uint64(n), stride: total, div: newDivisor(uint64(n)), periodic: spec.Periodic && n >= 3}
		l.all = append(l.all, ax)
		if n >= 2 {
			l.active = append(l.active, ax)
		}
		total = lo
	}
	l.n = total
	if r := spec.Blocked.Random; r != nil {
		if !(r.Density >= 0 && r.Density <= 1) { // also rejects NaN
			return nil, fmt.Errorf("%w: %v", ErrDensity, r.Density)
		}
		l.density = r.Density
		l.seedMix = splitmix(r.Seed)
		switch {
		case r.Density >= 1:
			l.random, l.thr = true, math.MaxUint64
		default:
			t := r.Density * (1 << 64) // < 2^64 for any float64 below 1
			if t >= 1 {
				l.random, l.thr = true, uint64(t)-1
			}
		}
	}
	if len(spec.Blocked.Cells) > lim.MaxBlockedCells {
		return nil, fmt.Errorf("%w: %d blocked cells (limit %d)", ErrInvalidSpec, len(spec.Blocked.Cells), lim.MaxBlockedCells)
	}
	if len(spec.Blocked.Cells) > 0 {
		l.cells = make(map[uint64]struct{}, len(spec.Blocked.Cells))
		for i, c := range spec.Blocked.Cells {
			idx, err := l.index(c)
			if err != nil {
				return nil, fmt.Errorf("blocked cell %d: %w", i, err)
			}
			l.cells[idx] = struct{}{}
		}
	}
	return l, nil
}

// Dims returns a copy of the axis lengths.
func (l *Lattice) Dims() []int64 { return append([]int64(nil), l.dims...) }

// Periodic reports whether the boundaries wrap.
func (l *Lattice) Periodic() bool { return l.periodic }

// Points returns the total number of points.
func (l *Lattice) Points() int64 { return int64(l.n) }

// HasBlocking reports whether any cell may be blocked.
func (l *Lattice) HasBlocking() bool { return l.random || len(l.cells) > 0 }

// index encodes a point as its mixed-radix linear index (axis 0 fastest).
func (l *Lattice) index(p []int64) (uint64, error) {
	if len(p) != len(l.dims) {
		return 0, fmt.Errorf("%w: got %d, lattice has %d", ErrDimension, len(p), len(l.dims))
	}
	var idx uint64
	for i, x := range p {
		if x < 0 || x >= l.dims[i] {
			return 0, fmt.Errorf("%w: coordinate %d is %d, must be in [0, %d)", ErrOutOfBounds, i, x, l.dims[i])
		}
		idx += uint64(x) * l.all[i].stride
	}
	return idx, nil
}

// Index returns the linear index of p (axis 0 varies fastest).
func (l *Lattice) Index(p []int64) (uint64, error) { return l.index(p) }

// Point decodes a linear index into coordinates.
func (l *Lattice) Point(idx uint64) ([]int64, error) {
	if idx >= l.n {
		return nil, fmt.Errorf("%w: index %d ≥ %d points", ErrOutOfBounds, idx, l.n)
	}
	p := make([]int64, len(l.dims))
	l.decode(idx, p)
	return p, nil
}

func (l *Lattice) decode(idx uint64, p []int64) {
	for i := range l.all {
		a := &l.all[i]
		q := a.div.div(idx)
		p[i] = int64(idx - q*a.n)
		idx = q
	}
}

// splitmix is the SplitMix64 finaliser.
func splitmix(z uint64) uint64 {
	z += 0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// blockHash is the per-point hash: SplitMix64 of the point's position in the
// stream seeded by the seed.
func (l *Lattice) blockHash(idx uint64) uint64 {
	z := l.seedMix + idx*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// blocked reports whether the point with linear index idx is blocked.
func (l *Lattice) blocked(idx uint64) bool {
	if l.random && l.blockHash(idx) <= l.thr {
		return true
	}
	if l.cells != nil {
		_, ok := l.cells[idx]
		return ok
	}
	return false
}

// IsBlocked reports whether p is blocked.
func (l *Lattice) IsBlocked(p []int64) (bool, error) {
	idx, err := l.index(p)
	if err != nil {
		return false, err
	}
	return l.blocked(idx), nil
}

// step moves idx by delta (±1) along axis a, whose coordinate is x. ok is
// false when the move leaves an open lattice.
func (a *axis) step(idx, x uint64, delta int) (uint64, bool) {
	if delta > 0 {
		if x+1 < a.n {
			return idx + a.stride, true
		}
		if a.periodic {
			return idx - (a.n-1)*a.stride, true
		}
		return 0, false
	}
	if x > 0 {
		return idx - a.stride, true
	}
	if a.periodic {
		return idx + (a.n-1)*a.stride, true
	}
	return 0, false
}

// axisDist is the distance between coordinates x and y on axis a.
func (a *axis) axisDist(x, y uint64) uint64 {
	d := x - y
	if y > x {
		d = y - x
	}
	if a.periodic && a.n-d < d {
		d = a.n - d
	}
	return d
}

// Distance returns the lattice metric between a and b, ignoring blocked
// cells: the Manhattan distance, with each axis's distance taken the short
// way round on a periodic lattice. The obstacle-aware distance is
// ShortestPath(...).Length.
func (l *Lattice) Distance(a, b []int64) (int64, error) {
	ia, err := l.index(a)
	if err != nil {
		return 0, fmt.Errorf("first point: %w", err)
	}
	ib, err := l.index(b)
	if err != nil {
		return 0, fmt.Errorf("second point: %w", err)
	}
	return int64(l.metric(ia, ib)), nil
}

func (l *Lattice) metric(ia, ib uint64) uint64 {
	var s uint64
	for i := range l.active {
		a := &l.active[i]
		qa, qb := a.div.div(ia), a.div.div(ib)
		s += a.axisDist(ia-qa*a.n, ib-qb*a.n)
		ia, ib = qa, qb
	}
	return s
}

// Neighbour is one axis-aligned neighbour of a point.
type Neighbour struct {
	Point   []int64
	Axis    int
	Step    int // +1 or -1 (the coordinate may have wrapped)
	Blocked bool
}

// Neighbours returns every in-bounds neighbour of p, blocked or not, in
// axis order, − before +. On an axis of length 2 the single neighbour is
// listed once, periodic or not.
func (l *Lattice) Neighbours(p []int64) ([]Neighbour, error) {
	idx, err := l.index(p)
	if err != nil {
		return nil, err
	}
	var out []Neighbour
	r := idx
	for i := range l.all {
		a := &l.all[i]
		q := a.div.div(r)
		x := r - q*a.n
		r = q
		if a.n < 2 {
			continue
		}
		for _, delta := range []int{-1, 1} {
			v, ok := a.step(idx, x, delta)
			if !ok {
				continue
			}
			pt := make([]int64, len(l.dims))
			l.decode(v, pt)
			out = append(out, Neighbour{Point: pt, Axis: a.dim, Step: delta, Blocked: l.blocked(v)})
		}
	}
	return out, nil
}
