package lattice

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkBFS measures full-component BFS on 10^6 and 10^7 points with 20 %
// random blocking. Metrics: nodes/s (points reached per second of search),
// clean-B/op (TotalAlloc delta per search, from runtime/metrics). The 10^8
// lattice runs only through RunBench with Include1e8 (see latticebench).
func BenchmarkBFS(b *testing.B) {
	for _, dims := range [][]int64{{1000, 1000}, {4000, 2500}} {
		l, err := New(Spec{Dims: dims, Blocked: Blocking{Random: &RandomBlock{Density: 0.2, Seed: 1}}}, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		start := centreOpen(l)
		name := fmt.Sprintf("%.0e", float64(l.Points()))
		var region []byte
		cases := []struct {
			name string
			opts PathOptions
		}{
			{"1core", PathOptions{Algorithm: AlgoBFS, Parallel: 1}},
			{"allcores", PathOptions{Algorithm: AlgoBFS, Parallel: runtime.GOMAXPROCS(0)}},
			{"catalytic", PathOptions{Algorithm: AlgoBFS, Parallel: 1, Catalytic: true}},
		}
		for _, c := range cases {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				if c.opts.Catalytic {
					if region == nil {
						region = SyntheticRegion(int(l.Points()/2) + 8<<20)
					}
					c.opts.Borrow = region
				}
				var nodes, clean, borrowed int64
				for b.Loop() {
					res, err := l.ReachableWithin(context.Background(), start, -1, c.opts)
					if err != nil {
						b.Fatal(err)
					}
					if c.opts.Catalytic && !res.Memory.Catalytic {
						b.Fatalf("catalytic mode not used: %s", res.Memory.CatalyticNote)
					}
					nodes += res.Count
					clean += res.Memory.CleanBytes
					borrowed += res.Memory.BorrowedBytes
				}
				b.ReportMetric(float64(nodes)/b.Elapsed().Seconds(), "nodes/s")
				b.ReportMetric(float64(clean)/float64(b.N), "clean-B/op")
				if borrowed > 0 {
					b.ReportMetric(float64(borrowed)/float64(b.N), "borrowed-B/op")
				}
			})
		}
		b.Run(name+"/explicit-csr", func(b *testing.B) {
			src, _ := l.Index(start)
			var nodes int64
			for b.Loop() {
				g, s, err := buildCSRFrom(context.Background(), l, src)
				if err != nil {
					b.Fatal(err)
				}
				nodes += g.bfs(s)
			}
			b.ReportMetric(float64(nodes)/b.Elapsed().Seconds(), "nodes/s(incl.build)")
		})
	}
}

// BenchmarkShortestPath compares the path algorithms corner to corner.
func BenchmarkShortestPath(b *testing.B) {
	l, err := New(Spec{Dims: []int64{1000, 1000}, Blocked: Blocking{Random: &RandomBlock{Density: 0.2, Seed: 1}}}, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	from, to := []int64{10, 10}, []int64{990, 990}
	for _, p := range [][]int64{from, to} {
		for bl, _ := l.IsBlocked(p); bl; bl, _ = l.IsBlocked(p) {
			p[0]++
		}
	}
	for _, algo := range []string{AlgoBFS, AlgoBidirectional, AlgoAStar} {
		b.Run(algo, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.ShortestPath(context.Background(), from, to, PathOptions{Algorithm: algo, Parallel: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRunBenchSmall runs RunBench on tiny shapes so its code is exercised by
// plain go test.
func TestRunBenchSmall(t *testing.T) {
	rows := RunBench(context.Background(), BenchOptions{
		Shapes: [][]int64{{200, 150}}, Catalytic: true, RegionBytes: 4 << 20, Workers: 2,
	})
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	var visited int64
	for _, r := range rows {
		if r.Err != "" {
			t.Fatalf("%s: %s", r.Case, r.Err)
		}
		if visited == 0 {
			visited = r.Visited
		}
		if r.Visited != visited {
			t.Fatalf("%s visited %d, others %d", r.Case, r.Visited, visited)
		}
	}
	if rows[2].BorrowedBytes == 0 {
		t.Fatalf("catalytic row borrowed nothing: %+v", rows[2])
	}
	tab := FormatBenchTable(rows)
	if !strings.Contains(tab, "explicit-csr") || strings.Count(tab, "\n") != 6 {
		t.Fatalf("table:\n%s", tab)
	}
	t.Logf("\n%s", tab)
}
