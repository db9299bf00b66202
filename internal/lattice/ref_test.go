package lattice

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refNeighbours lists neighbours from coordinates alone (no linear index).
func refNeighbours(spec Spec, p []int64) [][]int64 {
	var out [][]int64
	for i, n := range spec.Dims {
		for _, d := range []int64{-1, 1} {
			x := p[i] + d
			if x < 0 || x >= n {
				if !spec.Periodic {
					continue
				}
				x = (x + n) % n
			}
			if x == p[i] {
				continue
			}
			q := slices.Clone(p)
			q[i] = x
			out = append(out, q)
		}
	}
	return out
}

func key(p []int64) string { return fmt.Sprint(p) }

// refBFS is a plain BFS over coordinates with a map of distances.
func refBFS(t testing.TB, l *Lattice, spec Spec, from []int64) map[string]int64 {
	t.Helper()
	dist := map[string]int64{key(from): 0}
	q := [][]int64{from}
	for len(q) > 0 {
		u := q[0]
		q = q[1:]
		for _, v := range refNeighbours(spec, u) {
			if _, ok := dist[key(v)]; ok {
				continue
			}
			b, err := l.IsBlocked(v)
			if err != nil {
				t.Fatal(err)
			}
			if b {
				continue
			}
			dist[key(v)] = dist[key(u)] + 1
			q = append(q, v)
		}
	}
	return dist
}

// checkPath verifies a path: right endpoints, unit steps, in bounds, open.
func checkPath(t testing.TB, l *Lattice, spec Spec, from, to []int64, res PathResult) {
	t.Helper()
	if !res.Reachable {
		t.Fatalf("not reachable")
	}
	if res.Path == nil {
		t.Fatalf("no path (omitted: %q)", res.PathOmitted)
	}
	if int64(len(res.Path)) != res.Length+1 {
		t.Fatalf("path has %d points, length %d", len(res.Path), res.Length)
	}
	if !slices.Equal(res.Path[0], from) || !slices.Equal(res.Path[len(res.Path)-1], to) {
		t.Fatalf("path goes %v → %v, want %v → %v", res.Path[0], res.Path[len(res.Path)-1], from, to)
	}
	for i, p := range res.Path {
		b, err := l.IsBlocked(p)
		if err != nil {
			t.Fatalf("point %d %v: %v", i, p, err)
		}
		if b {
			t.Fatalf("point %d %v is blocked", i, p)
		}
		if i == 0 {
			continue
		}
		ok := false
		for _, v := range refNeighbours(spec, res.Path[i-1]) {
			if slices.Equal(v, p) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("step %d: %v → %v is not a unit step", i, res.Path[i-1], p)
		}
	}
}

func randSpec(r *rand.Rand, maxD int, maxN int64, density float64) Spec {
	d := 1 + r.IntN(maxD)
	dims := make([]int64, d)
	for i := range dims {
		dims[i] = 1 + r.Int64N(maxN)
	}
	s := Spec{Dims: dims, Periodic: r.IntN(2) == 0}
	if density > 0 {
		s.Blocked.Random = &RandomBlock{Density: r.Float64() * density, Seed: r.Uint64()}
	}
	return s
}

func randPoint(r *rand.Rand, dims []int64) []int64 {
	p := make([]int64, len(dims))
	for i, n := range dims {
		p[i] = r.Int64N(n)
	}
	return p
}

// randOpen returns a random open point, or nil after many tries.
func randOpen(r *rand.Rand, l *Lattice) []int64 {
	for range 200 {
		p := randPoint(r, l.dims)
		if b, _ := l.IsBlocked(p); !b {
			return p
		}
	}
	return nil
}

func specString(s Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dims=%v periodic=%v", s.Dims, s.Periodic)
	if s.Blocked.Random != nil {
		fmt.Fprintf(&b, " density=%.3f seed=%d", s.Blocked.Random.Density, s.Blocked.Random.Seed)
	}
	if len(s.Blocked.Cells) > 0 {
		fmt.Fprintf(&b, " cells=%v", s.Blocked.Cells)
	}
	return b.String()
}
