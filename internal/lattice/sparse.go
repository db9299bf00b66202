package lattice

import (
	"context"
	"fmt"
)

// Sparse searches store only the points they reach, in an open-addressing
// hash table (16 bytes per slot, at most 70 % full, so 23–46 bytes per
// point), which makes them usable on lattices far too large for a dense
// code array. Their memory is checked against the budget as they grow.

type table struct {
	keys   []uint64 // idx+1; 0 = empty
	vals   []uint64 // nil for a set
	n      int
	mask   uint64
	budget *memBudget
}

// budget tracks bytes held against a limit.
type memBudget struct {
	limit, held int64
	acct        *account
}

func (b *memBudget) take(n int64, what string) error {
	if b.held+n > b.limit {
		return fmt.Errorf("%w: %s needs %d more bytes, %d of %d in use", ErrMemoryBudget, what, n, b.held, b.limit)
	}
	b.held += n
	b.acct.add(n)
	return nil
}

func (b *memBudget) give(n int64) {
	b.held -= n
	b.acct.free(n)
}

func newTable(b *memBudget, withVals bool) (*table, error) {
	t := &table{budget: b}
	if err := t.alloc(1024, withVals); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *table) alloc(slots int, withVals bool) error {
	per := int64(8)
	if withVals {
		per = 16
	}
	if err := t.budget.take(int64(slots)*per, "sparse search table"); err != nil {
		return err
	}
	t.keys = make([]uint64, slots)
	if withVals {
		t.vals = make([]uint64, slots)
	}
	t.mask = uint64(slots - 1)
	return nil
}

func (t *table) find(idx uint64) (int, bool) {
	k := idx + 1
	i := splitmix(k) & t.mask
	for {
		switch t.keys[i] {
		case k:
			return int(i), true
		case 0:
			return int(i), false
		}
		i = (i + 1) & t.mask
	}
}

func (t *table) get(idx uint64) (uint64, bool) {
	i, ok := t.find(idx)
	if !ok {
		return 0, false
	}
	if t.vals == nil {
		return 0, true
	}
	return t.vals[i], true
}

// put inserts or updates idx.
func (t *table) put(idx, val uint64) error {
	i, ok := t.find(idx)
	if !ok {
		if (t.n+1)*10 > len(t.keys)*7 {
			if err := t.grow(); err != nil {
				return err
			}
			i, _ = t.find(idx)
		}
		t.keys[i] = idx + 1
		t.n++
	}
	if t.vals != nil {
		t.vals[i] = val
	}
	return nil
}

func (t *table) grow() error {
	oldK, oldV := t.keys, t.vals
	if err := t.alloc(2*len(oldK), oldV != nil); err != nil {
		return err
	}
	for j, k := range oldK {
		if k == 0 {
			continue
		}
		i := splitmix(k) & t.mask
		for t.keys[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.keys[i] = k
		if oldV != nil {
			t.vals[i] = oldV[j]
		}
	}
	per := int64(8)
	if oldV != nil {
		per = 16
	}
	t.budget.give(int64(len(oldK)) * per)
	return nil
}

// A* values: g<<8 | closed<<7 | move (7 bits: 2·activeAxis + (step>0); 127 = root).
const (
	moveRoot   = 127
	closedFlag = 1 << 7
)

// astar finds a shortest path from s to t with the lattice metric as
// heuristic (admissible and consistent: one step changes it by at most 1).
// The open set is a bucket queue on f = g + h, LIFO within a bucket, with
// lazy deletion. It returns length -1 when t is unreachable.
func (l *Lattice) astar(ctx context.Context, s, t uint64, bud *memBudget, h *hooks) (int64, []uint64, int64, error) {
	tab, err := newTable(bud, true)
	if err != nil {
		return 0, nil, 0, err
	}
	ax := l.active
	tc := make([]uint64, len(ax))
	{
		r := t
		for i := range ax {
			q := ax[i].div.div(r)
			tc[i] = r - q*ax[i].n
			r = q
		}
	}
	f0 := l.metric(s, t)
	var buckets [][]uint64
	var queued int64
	push := func(f uint64, v uint64) error {
		bi := int(f - f0)
		for len(buckets) <= bi {
			buckets = append(buckets, nil)
		}
		b := buckets[bi]
		if len(b) == cap(b) {
			nc := max(2*cap(b), 64)
			if err := bud.take(int64(nc-cap(b))*8, "A* open set"); err != nil {
				return err
			}
			nb := make([]uint64, len(b), nc)
			copy(nb, b)
			b = nb
		}
		buckets[bi] = append(b, v)
		queued++
		return nil
	}
	if err := tab.put(s, moveRoot); err != nil {
		return 0, nil, 0, err
	}
	if err := push(f0, s); err != nil {
		return 0, nil, 0, err
	}
	var expanded int64
	xs := make([]uint64, len(ax))
	for bi := 0; bi < len(buckets); {
		b := buckets[bi]
		if len(b) == 0 {
			bud.give(int64(cap(b)) * 8)
			buckets[bi] = nil
			bi++
			continue
		}
		u := b[len(b)-1]
		buckets[bi] = b[:len(b)-1]
		val, _ := tab.get(u)
		if val&closedFlag != 0 {
			continue
		}
		g := val >> 8
		// decode u, compute h(u)
		var hu uint64
		r := u
		for i := range ax {
			q := ax[i].div.div(r)
			xs[i] = r - q*ax[i].n
			r = q
			hu += ax[i].axisDist(xs[i], tc[i])
		}
		if g+hu != f0+uint64(bi) {
			continue // stale entry
		}
		if u == t {
			path := []uint64{t}
			for v := t; ; {
				val, _ := tab.get(v)
				m := val & 127
				if m == moveRoot {
					break
				}
				a := &ax[m>>1]
				x := (v / a.stride) % a.n
				delta := -1
				if m&1 == 0 {
					delta = 1
				}
				v, _ = a.step(v, x, delta)
				path = append(path, v)
			}
			reverse(path)
			return int64(g), path, int64(tab.n), nil
		}
		_ = tab.put(u, val|closedFlag) // existing key: cannot grow
		expanded++
		if expanded&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, nil, int64(tab.n), err
			}
			if h != nil && h.failAfter > 0 && expanded >= h.failAfter {
				return 0, nil, int64(tab.n), errInjected
			}
		}
		for i := range ax {
			a := &ax[i]
			for dir := range 2 {
				delta := -1 + 2*dir
				v, ok := a.step(u, xs[i], delta)
				if !ok || l.blocked(v) {
					continue
				}
				nv := xs[i] + 1
				if delta < 0 {
					nv = xs[i] + a.n - 1
				}
				if nv >= a.n {
					nv -= a.n
				}
				hv := hu - a.axisDist(xs[i], tc[i]) + a.axisDist(nv, tc[i])
				if old, ok := tab.get(v); ok && (old&closedFlag != 0 || old>>8 <= g+1) {
					continue
				}
				if err := tab.put(v, (g+1)<<8|uint64(2*i+dir)); err != nil {
					return 0, nil, int64(tab.n), err
				}
				if err := push(g+1+hv, v); err != nil {
					return 0, nil, int64(tab.n), err
				}
			}
		}
	}
	return -1, nil, int64(tab.n), nil
}

func reverse(p []uint64) {
	for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
		p[i], p[j] = p[j], p[i]
	}
}

// sparseBFS counts the open points within radius of s (radius < 0: no
// limit), stopping early when it reaches stopAt (if stopAt is not ^0) or
// when it has reached more than cap points (cap ≤ 0: no cap). It returns
// the count, whether the component was exhausted, and whether stopAt was
// reached.
func (l *Lattice) sparseBFS(ctx context.Context, s uint64, radius int64, stopAt uint64, capPoints int64, bud *memBudget, h *hooks) (count int64, exhausted, hit bool, err error) {
	tab, err := newTable(bud, false)
	if err != nil {
		return 0, false, false, err
	}
	if err := tab.put(s, 0); err != nil {
		return 0, false, false, err
	}
	if s == stopAt {
		return 1, false, true, nil
	}
	if err := bud.take(8, "sparse BFS frontier"); err != nil {
		return 0, false, false, err
	}
	cur := []uint64{s}
	var next []uint64
	count = 1
	var steps int64
	for depth := int64(0); radius < 0 || depth < radius; depth++ {
		next = next[:0]
		for _, u := range cur {
			steps++
			if steps&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return count, false, false, err
				}
				if h != nil && h.failAfter > 0 && steps >= h.failAfter {
					return count, false, false, errInjected
				}
			}
			var ferr error
			l.forNeighbours(u, func(v uint64) {
				if ferr != nil || l.blocked(v) {
					return
				}
				if _, ok := tab.get(v); ok {
					return
				}
				if ferr = tab.put(v, 0); ferr != nil {
					return
				}
				count++
				if v == stopAt {
					hit = true
				}
				if len(next) == cap(next) {
					nc := max(2*cap(next), 256)
					if ferr = bud.take(int64(nc)*8, "sparse BFS frontier"); ferr != nil {
						return
					}
					nn := make([]uint64, len(next), nc)
					copy(nn, next)
					bud.give(int64(cap(next)) * 8)
					next = nn
				}
				next = append(next, v)
			})
			if ferr != nil {
				return count, false, false, ferr
			}
			if hit {
				return count, false, true, nil
			}
			if capPoints > 0 && count > capPoints {
				return count, false, false, nil
			}
		}
		if len(next) == 0 {
			return count, true, false, nil
		}
		cur, next = next, cur
	}
	return count, false, false, nil
}
