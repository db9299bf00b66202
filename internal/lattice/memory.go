package lattice

import (
	"context"
	"fmt"
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryReport is the memory account of one operation.
//
// CleanBytes is measured: the growth of the runtime's cumulative heap
// allocation counter (runtime/metrics "/gc/heap/allocs:bytes", the same
// quantity as MemStats.TotalAlloc) from the start to the end of the
// operation. Every byte the operation allocated is in it, including the
// compressor's state and buffers later freed, so it is an upper bound on how
// far the operation raised the live heap. It is process-wide: allocations by
// other goroutines during the operation are counted too, and small
// allocations are counted per span (so it is exact to within a few KiB).
// AccountedBytes is the engine's own tally of the large buffers it allocated
// (code arrays, frontier lists, hash tables, path), as a cross-check.
type MemoryReport struct {
	CleanBytes     int64 // measured, see above
	AccountedBytes int64 // engine's tally of its large allocations (cumulative)
	// AccountedPeakBytes is the most of those live at once; the memory
	// budget bounds it.
	AccountedPeakBytes int64
	ScratchBytes       int64 // scratch the algorithm used, clean or borrowed
	BudgetBytes        int64 // the clean-memory budget that applied

	Catalytic       bool          // scratch was borrowed from the caller's region
	CatalyticNote   string        // why catalytic mode was not used, or fell back
	BorrowedBytes   int64         // prefix of the region compressed and then restored
	CompressedBytes int64         // that prefix's compressed size
	RestoredBytes   int64         // bytes verified identical after restoring
	RegionSHA256    string        // hex SHA-256 of the borrowed prefix, before = after
	BorrowDuration  time.Duration // hashing and compressing the prefix
	RestoreDuration time.Duration // decompressing it and verifying the hash

	// Explicit is what an explicit graph of the same lattice would need.
	Explicit ExplicitSize
	// ReductionVsAdjacencyList = Explicit.ListBytes / CleanBytes, and
	// likewise for the matrix: true ratios of the stated quantities.
	ReductionVsAdjacencyList   float64
	ReductionVsAdjacencyMatrix float64
}

// ExplicitSize is the size of explicit representations of the lattice graph
// (open points as vertices, axis-aligned open pairs as edges).
type ExplicitSize struct {
	Vertices float64
	Edges    float64
	Exact    bool   // false: expected values under random blocking
	Basis    string // how Vertices and Edges were obtained
	// MatrixBytes = V²/8: one bit per ordered vertex pair.
	MatrixBytes float64
	// ListBytes is compressed sparse row form, the smallest standard list
	// layout: (V+1) offsets and 2E neighbour ids, each 4 bytes when it fits
	// in 32 bits, else 8 (see ListLayout).
	ListBytes  float64
	ListLayout string
}

// account is the engine's tally of its own large allocations: total
// allocated, currently live, and the peak of live.
type account struct {
	n, cur, peak atomic.Int64
}

func (a *account) add(b int64) {
	if a == nil {
		return
	}
	a.n.Add(b)
	c := a.cur.Add(b)
	for {
		p := a.peak.Load()
		if c <= p || a.peak.CompareAndSwap(p, c) {
			return
		}
	}
}

// free records that b bytes of earlier allocations are no longer used.
func (a *account) free(b int64) {
	if a != nil {
		a.cur.Add(-b)
	}
}

// heapAllocs returns the cumulative heap allocation counter.
func heapAllocs() int64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(sample[0].Value.Uint64())
}

// meter measures one operation.
type meter struct {
	start int64
	acct  account
}

func startMeter() *meter { return &meter{start: heapAllocs()} }

func (m *meter) finish(l *Lattice, r *MemoryReport) {
	r.CleanBytes = max(heapAllocs()-m.start, 0)
	r.AccountedBytes = m.acct.n.Load()
	r.AccountedPeakBytes = m.acct.peak.Load()
	r.Explicit = l.ExplicitSize()
	if r.CleanBytes > 0 {
		r.ReductionVsAdjacencyList = r.Explicit.ListBytes / float64(r.CleanBytes)
		r.ReductionVsAdjacencyMatrix = r.Explicit.MatrixBytes / float64(r.CleanBytes)
	}
}

// Census is an exact count of open points and open edges.
type Census struct {
	Vertices int64
	Edges    int64
}

// edgesOfBox counts the edges of the lattice with nothing blocked.
func (l *Lattice) edgesOfBox() float64 {
	var e float64
	for _, a := range l.active {
		if a.periodic {
			e += float64(l.n)
		} else {
			e += float64(a.n-1) * float64(l.n/a.n)
		}
	}
	return e
}

// degree is the number of in-bounds neighbours of idx.
func (l *Lattice) degree(idx uint64) int {
	d := 0
	r := idx
	for i := range l.active {
		a := &l.active[i]
		q := a.div.div(r)
		x := r - q*a.n
		r = q
		if a.periodic {
			d += 2
			continue
		}
		if x > 0 {
			d++
		}
		if x+1 < a.n {
			d++
		}
	}
	return d
}

// ExplicitSize returns the explicit-graph sizes: exact when nothing is
// blocked, when only explicit cells are blocked, or after Census; otherwise
// expected values under the random density.
func (l *Lattice) ExplicitSize() ExplicitSize {
	var v, e float64
	var exact bool
	var basis string
	l.censusMu.Lock()
	c := l.census
	l.censusMu.Unlock()
	switch {
	case c != nil:
		v, e, exact, basis = float64(c.Vertices), float64(c.Edges), true, "exact: census of every point"
	case !l.HasBlocking():
		v, e, exact, basis = float64(l.n), l.edgesOfBox(), true, "exact: nothing blocked"
	case !l.random:
		v, e, exact = float64(l.n)-float64(len(l.cells)), l.edgesOfBox(), true
		basis = "exact: box minus the explicit blocked cells"
		for b := range l.cells {
			e -= float64(l.degree(b))
			l.forNeighbours(b, func(u uint64) {
				if _, ok := l.cells[u]; ok {
					e += 0.5 // an edge between two blocked cells was subtracted twice
				}
			})
		}
	default:
		q := 1 - l.density
		v, e = float64(l.n)*q, l.edgesOfBox()*q*q
		basis = fmt.Sprintf("expected values for random density %g (run Census for exact counts)", l.density)
		if len(l.cells) > 0 {
			basis += "; explicit cells ignored"
		}
	}
	off, offB := "4 B", 4.0
	if 2*e >= math.MaxUint32 {
		off, offB = "8 B", 8
	}
	id, idB := "4 B", 4.0
	if v > math.MaxUint32 {
		id, idB = "8 B", 8
	}
	return ExplicitSize{
		Vertices: v, Edges: e, Exact: exact, Basis: basis,
		MatrixBytes: v * v / 8,
		ListBytes:   (v+1)*offB + 2*e*idB,
		ListLayout:  fmt.Sprintf("CSR: (V+1) offsets × %s + 2E neighbour ids × %s", off, id),
	}
}

// forNeighbours calls f for each in-bounds neighbour of idx (blocked or not).
func (l *Lattice) forNeighbours(idx uint64, f func(uint64)) {
	r := idx
	for i := range l.active {
		a := &l.active[i]
		q := a.div.div(r)
		x := r - q*a.n
		r = q
		if v, ok := a.step(idx, x, -1); ok {
			f(v)
		}
		if v, ok := a.step(idx, x, +1); ok {
			f(v)
		}
	}
}

// Census counts open points and open edges exactly, by visiting every
// point (in parallel), and caches the result for ExplicitSize. It stores
// nothing per point. It honours ctx.
func (l *Lattice) Census(ctx context.Context, workers int) (Census, error) {
	l.censusMu.Lock()
	if l.census != nil {
		c := *l.census
		l.censusMu.Unlock()
		return c, nil
	}
	l.censusMu.Unlock()
	workers = workersFor(workers)
	const unit = 1 << 16
	units := (l.n + unit - 1) / unit
	var next atomic.Uint64
	var vs, es atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				u := next.Add(1) - 1
				if u >= units {
					return
				}
				var v, e int64
				for idx := u * unit; idx < min((u+1)*unit, l.n); idx++ {
					if l.blocked(idx) {
						continue
					}
					v++
					r := idx
					for i := range l.active {
						a := &l.active[i]
						q := a.div.div(r)
						x := r - q*a.n
						r = q
						if w, ok := a.step(idx, x, +1); ok && !l.blocked(w) {
							e++
						}
					}
				}
				vs.Add(v)
				es.Add(e)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Census{}, fmt.Errorf("lattice census: %w", err)
	}
	c := Census{Vertices: vs.Load(), Edges: es.Load()}
	l.censusMu.Lock()
	l.census = &c
	l.censusMu.Unlock()
	return c, nil
}
