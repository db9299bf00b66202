package lattice

import (
	"context"
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The dense breadth-first search keeps 2 bits per point and side in a "code
// array": 0 = not reached, 1 + (distance mod 3) = reached. Adjacent points'
// BFS distances differ by at most one, so from a point at distance k the
// neighbour with code 1+((k−1) mod 3) is a predecessor: the path is walked
// back without parent pointers. The code array doubles as the visited set.
//
// A frontier is held in one of three forms:
//
//   - a list of linear indices, up to a limit (max(n/64, 4096) entries in
//     clean memory, max(n/256, 4096) in borrowed scratch, fewer if the budget
//     is tight); lists grow on demand;
//   - a bitset over all points (n/8 bytes), used when a level's list would
//     pass the limit: the list is converted and the rest of the level is
//     written as bits. Bitsets are allocated on first need, from clean memory,
//     only if the budget has room for them (two per side);
//   - nothing ("stale scan"), the last resort when a list overflows and no
//     bitset fits the budget: the next expansion scans the code array for
//     points whose code equals the level's code. That finds the level's points
//     but also those 3, 6, … levels older (same code), whose expansion finds
//     nothing new: correct, but slower.
//
// A level held as a bitset costs n/64 word reads to scan, at most 1 (clean)
// or 4 (borrowed) per frontier point at the default limits.
//
// levelKernel is the seam where another backend (e.g. a GPU) would plug in:
// it expands one level of one side given the code arrays and the frontier
// and produces the next frontier. The CPU kernel below runs serial or
// level-synchronous parallel (goroutines over frontier chunks, CAS on the
// code words).

const (
	chunkNodes   = 1024 // frontier entries per work unit
	chunkWords   = 256  // code words (8192 points) per work unit in scan mode
	localBuf     = 512  // per-worker buffer before flushing to the next list
	parMinList   = 8 * chunkNodes
	parMinWords  = 2 * chunkWords
	minListLimit = 256
)

func code(depth int64) uint64 { return uint64(depth%3) + 1 }

const (
	modeList = iota
	modeBits
	modeScan
)

// flist is one frontier: a list with a hard limit, which turns into a
// bitset (if one can be had) or records overflow when the limit is passed.
// The list grows (clean memory) or is fixed (borrowed scratch).
type flist struct {
	mu       sync.Mutex
	buf      []uint64
	n        int
	limit    int
	fixed    bool
	overflow bool     // entries were dropped: next level uses stale scan
	inBits   bool     // the level is held in bits
	bits     []uint64 // bitset (nil until first needed); zero when not inBits
	getBits  func() []uint64
	par      bool // the level is expanded by several workers: set bits atomically
	acct     *account
}

func (f *flist) reset() { f.n, f.overflow, f.inBits = 0, false, false }

func (f *flist) items() []uint64 { return f.buf[:f.n] }

func setBits(bits []uint64, vs []uint64, par bool) {
	if !par {
		for _, v := range vs {
			bits[v>>6] |= 1 << (v & 63)
		}
		return
	}
	for _, v := range vs {
		atomic.OrUint64(&bits[v>>6], 1<<(v&63))
	}
}

// flush appends local entries; safe for concurrent use.
func (f *flist) flush(local []uint64) {
	if len(local) == 0 {
		return
	}
	f.mu.Lock()
	if f.inBits {
		f.mu.Unlock()
		setBits(f.bits, local, f.par)
		return
	}
	defer f.mu.Unlock()
	if f.overflow {
		return
	}
	need := f.n + len(local)
	if need > len(f.buf) {
		if f.fixed || need > f.limit {
			if f.bits == nil && f.getBits != nil {
				f.bits = f.getBits()
			}
			if f.bits == nil {
				f.overflow = true
				return
			}
			setBits(f.bits, f.buf[:f.n], f.par)
			setBits(f.bits, local, f.par)
			f.inBits, f.n = true, 0
			return
		}
		nc := max(2*len(f.buf), need, 4096)
		nc = min(nc, f.limit)
		nb := make([]uint64, nc)
		f.acct.add(int64(nc) * 8)
		copy(nb, f.buf[:f.n])
		f.acct.free(int64(len(f.buf)) * 8)
		f.buf = nb
	}
	copy(f.buf[f.n:], local)
	f.n = need
}

// side is one search direction.
type side struct {
	codes     []uint64
	cur, next *flist
	depth     int64 // distance of the points in the current frontier
	mode      int   // how the current frontier is held: modeList, modeBits, modeScan
	exhausted bool  // the last level discovered nothing
	disc      int64 // points reached so far (including the root)
}

func (s *side) codeAt(v uint64) uint64 { return (s.codes[v>>5] >> ((v & 31) << 1)) & 3 }

func (s *side) mark(v uint64, c uint64) { s.codes[v>>5] |= c << ((v & 31) << 1) }

// levelKernel expands one BFS level. See the comment at the top of the file.
type levelKernel interface {
	expandLevel(e *dense, s, other *side) (discovered int64, err error)
}

// dense runs one dense search.
type dense struct {
	l       *Lattice
	ctx     context.Context
	done    <-chan struct{}
	workers int
	kernel  levelKernel
	hooks   *hooks

	// per-level, read-only while a level runs
	nc        uint64 // code of the level being discovered
	c         uint64 // code of the level being expanded
	other     *side  // meet check against this side's codes (may be nil)
	target    uint64
	hasTarget bool
	par       bool

	ws         []*worker // reused across levels
	workerPool *pool

	stop     atomic.Bool
	meet     atomic.Uint64 // meeting point + 1
	expanded atomic.Int64
	errMu    sync.Mutex
	err      error
}

func (e *dense) fail(err error) {
	e.errMu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.errMu.Unlock()
	e.stop.Store(true)
}

// checkpoint is called once per work unit: cancellation, injected failures.
func (e *dense) checkpoint(n int64) bool {
	total := e.expanded.Add(n)
	if h := e.hooks; h != nil {
		if h.onProgress != nil {
			h.onProgress(total)
		}
		if h.failAfter > 0 && total >= h.failAfter {
			e.fail(errInjected)
			return false
		}
	}
	select {
	case <-e.done:
		e.fail(e.ctx.Err())
		return false
	default:
	}
	return !e.stop.Load()
}

type worker struct {
	local []uint64
	count int64
	next  *flist
	cand  [2 * MaxDims]uint64
}

// expand tries every neighbour of u: coordinates by multiply-shift division
// (none for the last axis), a visited check inline, discover for new ones.
func (e *dense) expand(w *worker, s *side, u uint64) {
	ax := e.l.active
	cand := &w.cand
	n := 0
	r := u
	for k := range ax {
		a := &ax[k]
		x := r
		if k+1 < len(ax) {
			q := a.div.div(r)
			x = r - q*a.n
			r = q
		}
		if x > 0 {
			cand[n] = u - a.stride
			n++
		} else if a.periodic {
			cand[n] = u + (a.n-1)*a.stride
			n++
		}
		if x+1 < a.n {
			cand[n] = u + a.stride
			n++
		} else if a.periodic {
			cand[n] = u - (a.n-1)*a.stride
			n++
		}
	}
	codes := s.codes
	l := e.l
	random, thr, seed, cells := l.random, l.thr, l.seedMix, l.cells
	par := e.par
	for _, v := range cand[:n] {
		wi, sh := v>>5, (v&31)<<1
		var word uint64
		if par {
			word = atomic.LoadUint64(&codes[wi])
		} else {
			word = codes[wi]
		}
		if (word>>sh)&3 != 0 {
			continue
		}
		if random {
			z := seed + v*0x9E3779B97F4A7C15 // blockHash, inlined
			z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
			z = (z ^ (z >> 27)) * 0x94D049BB133111EB
			if z^(z>>31) <= thr {
				continue
			}
		}
		if cells != nil {
			if _, ok := cells[v]; ok {
				continue
			}
		}
		e.discover(w, s, v, wi, sh)
	}
}

// discover claims v, which is open, if it is still unreached.
func (e *dense) discover(w *worker, s *side, v, wi, sh uint64) {
	if e.par {
		for {
			old := atomic.LoadUint64(&s.codes[wi])
			if (old>>sh)&3 != 0 {
				return
			}
			if atomic.CompareAndSwapUint64(&s.codes[wi], old, old|e.nc<<sh) {
				break
			}
		}
	} else {
		s.codes[wi] |= e.nc << sh
	}
	w.count++
	w.local = append(w.local, v)
	if len(w.local) == cap(w.local) {
		w.next.flush(w.local)
		w.local = w.local[:0]
	}
	if e.hasTarget && v == e.target || e.other != nil && e.other.codeAt(v) != 0 {
		if e.meet.CompareAndSwap(0, v+1) {
			e.stop.Store(true)
		}
	}
}

func (e *dense) expandList(w *worker, s *side, items []uint64) {
	for _, u := range items {
		e.expand(w, s, u)
	}
}

var scanPattern = [4]uint64{0, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA, 0xFFFFFFFFFFFFFFFF}

// expandScan expands the points with code e.c in code words [lo, hi).
func (e *dense) expandScan(w *worker, s *side, lo, hi int) int64 {
	pat := scanPattern[e.c]
	var nodes int64
	for wi := lo; wi < hi; wi++ {
		var word uint64
		if e.par {
			word = atomic.LoadUint64(&s.codes[wi])
		} else {
			word = s.codes[wi]
		}
		m := ^(word ^ pat)
		match := m & (m >> 1) & 0x5555555555555555
		for match != 0 {
			b := bits.TrailingZeros64(match)
			match &= match - 1
			e.expand(w, s, uint64(wi)<<5|uint64(b>>1))
			nodes++
		}
		if e.stop.Load() {
			break
		}
	}
	return nodes
}

// expandBits expands the points set in bitset words [lo, hi), clearing them.
func (e *dense) expandBits(w *worker, s *side, set []uint64, lo, hi int) int64 {
	var nodes int64
	for wi := lo; wi < hi; wi++ {
		x := set[wi]
		if x == 0 {
			continue
		}
		set[wi] = 0
		for x != 0 {
			b := bits.TrailingZeros64(x)
			x &= x - 1
			e.expand(w, s, uint64(wi)<<6|uint64(b))
			nodes++
		}
		if e.stop.Load() {
			break
		}
	}
	return nodes
}

// cpuKernel is the CPU implementation of levelKernel.
type cpuKernel struct{}

func (cpuKernel) expandLevel(e *dense, s, other *side) (int64, error) {
	s.next.reset()
	e.c, e.nc = code(s.depth), code(s.depth+1)
	e.other = other
	cn, cw, pl, pw := chunkNodes, chunkWords, parMinList, parMinWords
	if h := e.hooks; h != nil && h.chunk > 0 {
		cn, cw = h.chunk, h.chunk
	}
	if h := e.hooks; h != nil && h.parMin > 0 {
		pl, pw = h.parMin, h.parMin
	}
	var items []uint64
	units := 0
	var words []uint64 // code words (scan) or bitset words (bits)
	switch s.mode {
	case modeScan:
		words = s.codes
	case modeBits:
		words = s.cur.bits
	default:
		items = s.cur.items()
		units = (len(items) + cn - 1) / cn
	}
	if words != nil {
		units = (len(words) + cw - 1) / cw
	}
	workers := e.workers
	if words != nil && len(words) < pw || words == nil && len(items) < pl {
		workers = 1
	}
	e.par = workers > 1
	s.next.par = e.par
	var unit atomic.Int64
	run := func(w *worker) {
		for !e.stop.Load() {
			i := int(unit.Add(1) - 1)
			if i >= units {
				break
			}
			var n int64
			switch s.mode {
			case modeScan:
				n = e.expandScan(w, s, i*cw, min((i+1)*cw, len(words)))
			case modeBits:
				n = e.expandBits(w, s, words, i*cw, min((i+1)*cw, len(words)))
			default:
				chunk := items[i*cn : min((i+1)*cn, len(items))]
				e.expandList(w, s, chunk)
				n = int64(len(chunk))
			}
			if !e.checkpoint(n) {
				break
			}
		}
		w.next.flush(w.local)
		w.local = w.local[:0]
	}
	for len(e.ws) < workers {
		e.ws = append(e.ws, &worker{local: make([]uint64, 0, localBuf)})
	}
	ws := e.ws[:workers]
	for _, w := range ws {
		w.count, w.next, w.local = 0, s.next, w.local[:0]
	}
	if workers == 1 {
		run(ws[0])
	} else {
		e.pool(workers).run(func(k int) { run(ws[k]) })
	}
	var found int64
	for _, w := range ws {
		found += w.count
	}
	e.errMu.Lock()
	err := e.err
	e.errMu.Unlock()
	return found, err
}

// level expands one level of s and advances it.
func (e *dense) level(s, other *side) error {
	found, err := e.kernel.expandLevel(e, s, other)
	s.disc += found
	if err != nil {
		return err
	}
	s.cur, s.next = s.next, s.cur
	switch {
	case s.cur.inBits:
		s.mode = modeBits
	case s.cur.overflow:
		s.mode = modeScan
	default:
		s.mode = modeList
	}
	s.depth++
	s.exhausted = found == 0
	return nil
}

// walk appends the path from v (at distance dist on side s) back to the
// side's root, v first.
func (e *dense) walk(s *side, v uint64, dist int64, out []uint64) []uint64 {
	out = append(out, v)
	ax := e.l.active
	for k := dist; k > 0; k-- {
		want := code(k - 1)
		r, u := v, v
		found := false
		for i := range ax {
			a := &ax[i]
			q := a.div.div(r)
			x := r - q*a.n
			r = q
			if p, ok := a.step(u, x, -1); ok && s.codeAt(p) == want {
				v, found = p, true
				break
			}
			if p, ok := a.step(u, x, +1); ok && s.codeAt(p) == want {
				v, found = p, true
				break
			}
		}
		if !found { // cannot happen: BFS codes are exact distances mod 3
			panic("lattice: broken BFS code array")
		}
		out = append(out, v)
	}
	return out
}

// densePlan sizes a dense search: code arrays and frontier list limits.
type densePlan struct {
	sides     int
	words     int   // code words per side
	listLimit int   // entries per frontier list
	scratch   int64 // bytes of scratch if taken at full size (catalytic)
	clean     int64 // worst-case clean bytes when allocated (lists may grow 1.5×)
}

// Lists may hold n/listShareClean points each in clean memory (both lists
// of a side together then weigh as much as its code array), n/listShareBorrowed
// when they live in borrowed scratch (which must be freed up front).
const (
	listShareClean    = 64
	listShareBorrowed = 256
)

func (l *Lattice) planDense(sides int, budget int64, share int64) (densePlan, bool) {
	p := densePlan{sides: sides, words: int((l.n + 31) / 32)}
	codeBytes := int64(sides) * int64(p.words) * 8
	limit := max(int64(l.n)/share, 4096)
	limit = min(limit, int64(l.n))
	lists := func(lim int64) int64 { return int64(sides) * 2 * lim * 8 }
	if codeBytes+lists(limit)*3/2 > budget {
		limit = (budget - codeBytes) * 2 / 3 / (int64(sides) * 16)
		if limit < minListLimit && limit < int64(l.n) {
			return p, false
		}
	}
	p.listLimit = int(limit)
	p.scratch = codeBytes + lists(limit)
	p.clean = codeBytes + lists(limit)*3/2
	return p, true
}

// newSides builds the sides, from scratch (borrowed, fixed) or clean memory.
// getBits (may be nil) supplies frontier bitsets.
func (l *Lattice) newSides(p densePlan, scratch []uint64, acct *account, getBits func() []uint64) []*side {
	out := make([]*side, p.sides)
	for i := range out {
		s := &side{}
		if scratch != nil {
			s.codes = scratch[:p.words:p.words]
			scratch = scratch[p.words:]
			clear(s.codes)
			s.cur = &flist{buf: scratch[:p.listLimit:p.listLimit], limit: p.listLimit, fixed: true}
			scratch = scratch[p.listLimit:]
			s.next = &flist{buf: scratch[:p.listLimit:p.listLimit], limit: p.listLimit, fixed: true}
			scratch = scratch[p.listLimit:]
		} else {
			s.codes = make([]uint64, p.words)
			acct.add(int64(p.words) * 8)
			s.cur = &flist{limit: p.listLimit, acct: acct}
			s.next = &flist{limit: p.listLimit, acct: acct}
		}
		s.cur.getBits, s.next.getBits = getBits, getBits
		out[i] = s
	}
	return out
}

func (l *Lattice) seed(s *side, root uint64) {
	s.mark(root, code(0))
	s.cur.flush([]uint64{root})
	s.disc = 1
}

var errInjected = errors.New("lattice: injected failure")

// hooks are test-only fault injection points.
type hooks struct {
	failAfter         int64       // fail once this many points were expanded
	onProgress        func(int64) // called per work unit with points expanded so far
	failCompressChunk int         // fail before compressing this chunk (1-based)
	chunk             int         // work unit size (nodes and words), 0: default
	parMin            int         // smallest list run in parallel, 0: default
	listLimit         int         // frontier list limit, 0: planned
	noBits            bool        // never use frontier bitsets (forces stale scan)
}

func workersFor(p int) int {
	if p <= 0 {
		p = runtime.GOMAXPROCS(0)
	}
	return p
}

// pool is a set of worker goroutines kept for the whole search, so a level
// does not pay for waking sleeping threads: between levels the workers spin
// (yielding) for up to spinFor, then park until the next level.
type pool struct {
	n       int
	gen     atomic.Uint64
	job     func(k int)
	pending atomic.Int64
	parked  []atomic.Bool
	wake    []chan struct{}
	quit    atomic.Bool
	wg      sync.WaitGroup
}

const spinFor = 200 * time.Microsecond

func (e *dense) pool(workers int) *pool {
	if e.workerPool != nil && e.workerPool.n == workers {
		return e.workerPool
	}
	e.closePool()
	p := &pool{n: workers, parked: make([]atomic.Bool, workers), wake: make([]chan struct{}, workers)}
	for k := 1; k < workers; k++ {
		p.wake[k] = make(chan struct{}, 1)
		p.wg.Go(func() { p.loop(k) })
	}
	e.workerPool = p
	return p
}

func (e *dense) closePool() {
	if p := e.workerPool; p != nil {
		p.quit.Store(true)
		p.gen.Add(1)
		for k := 1; k < p.n; k++ {
			if p.parked[k].CompareAndSwap(true, false) {
				p.wake[k] <- struct{}{}
			}
		}
		p.wg.Wait()
		e.workerPool = nil
	}
}

func (p *pool) loop(k int) {
	var seen uint64
	for {
		start := time.Now()
		for i := 0; p.gen.Load() == seen; i++ {
			if i&63 == 63 && time.Since(start) > spinFor {
				p.parked[k].Store(true)
				if p.gen.Load() != seen {
					// work arrived meanwhile; if a waker took the flag it
					// sends a token, which must be consumed
					if !p.parked[k].CompareAndSwap(true, false) {
						<-p.wake[k]
					}
				} else {
					<-p.wake[k] // the waker clears the flag and sends
				}
				start = time.Now()
			}
			runtime.Gosched()
		}
		seen = p.gen.Load()
		if p.quit.Load() {
			return
		}
		p.job(k)
		p.pending.Add(-1)
	}
}

// run executes job(0..n-1), job(0) on the caller, and waits.
func (p *pool) run(job func(k int)) {
	p.job = job
	p.pending.Store(int64(p.n - 1))
	p.gen.Add(1)
	for k := 1; k < p.n; k++ {
		if p.parked[k].CompareAndSwap(true, false) {
			p.wake[k] <- struct{}{}
		}
	}
	job(0)
	for p.pending.Load() != 0 {
		runtime.Gosched()
	}
}
