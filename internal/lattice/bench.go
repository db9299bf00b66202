package lattice

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// BenchOptions configure RunBench.
type BenchOptions struct {
	// Shapes are the lattices to measure (default: 1000×1000, 4000×2500,
	// and 10000×10000 when Include1e8 is set).
	Shapes [][]int64
	// Include1e8 adds the 10^8-point lattice to the default shapes.
	Include1e8 bool
	// Density of random blocking (default 0.2) and its seed (default 1).
	Density float64
	Seed    uint64
	// Workers for the all-cores rows (0: GOMAXPROCS).
	Workers int
	// BaselineMaxBytes: the explicit-adjacency baseline runs only when its
	// estimated peak (CSR plus the index map used to build it) is below this
	// (0: 1 GiB; negative: never).
	BaselineMaxBytes int64
	// Catalytic adds rows that borrow their scratch from a region of
	// RegionBytes (default 64 MiB) of synthetic log text.
	Catalytic   bool
	RegionBytes int
	// Repeats runs each case this many times and keeps the fastest (default 1).
	Repeats int
}

// BenchRow is one measured case. Throughput counts the points the search
// reached (the start's whole component) over the wall time of the search
// including its setup (zeroing the code array; for catalytic rows also
// compressing and restoring the borrowed prefix).
type BenchRow struct {
	Case        string  // bfs-1core, bfs-allcores, bfs-catalytic, explicit-csr
	Dims        []int64 // lattice shape
	Points      int64
	Density     float64
	Workers     int
	Visited     int64   // points reached
	Seconds     float64 // search time (explicit: BFS only)
	NodesPerSec float64
	// BuildSeconds is the time to build the explicit CSR (explicit rows).
	BuildSeconds float64
	// CleanBytes: TotalAlloc delta (runtime/metrics /gc/heap/allocs:bytes)
	// over the operation; for explicit rows over build + BFS.
	CleanBytes     int64
	AccountedBytes int64
	BorrowedBytes  int64 // catalytic rows
	CatalyticSecs  float64
	// Explicit adjacency sizes of the same lattice (exact, from a census).
	ExplicitListBytes   float64
	ExplicitMatrixBytes float64
	// ReductionVsList = ExplicitListBytes / CleanBytes.
	ReductionVsList float64
	Note            string
	Err             string
}

func (o *BenchOptions) defaults() {
	if len(o.Shapes) == 0 {
		o.Shapes = [][]int64{{1000, 1000}, {4000, 2500}}
		if o.Include1e8 {
			o.Shapes = append(o.Shapes, []int64{10000, 10000})
		}
	}
	if o.Density == 0 {
		o.Density = 0.2
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	o.Workers = workersFor(o.Workers)
	if o.BaselineMaxBytes == 0 {
		o.BaselineMaxBytes = 1 << 30
	}
	if o.RegionBytes <= 0 {
		o.RegionBytes = 64 << 20
	}
	if o.Repeats <= 0 {
		o.Repeats = 1
	}
}

// RunBench measures BFS throughput and memory on lattices with random
// blocking: one core, all cores, catalytic (optional) and an explicit
// adjacency-list baseline (where it fits). It never panics; a failed case
// has Err set. The 10^8-point lattice runs only with Include1e8 or an
// explicit shape.
func RunBench(ctx context.Context, opts BenchOptions) []BenchRow {
	opts.defaults()
	var rows []BenchRow
	var region []byte
	if opts.Catalytic {
		region = SyntheticRegion(opts.RegionBytes)
	}
	for _, dims := range opts.Shapes {
		if ctx.Err() != nil {
			break
		}
		spec := Spec{Dims: dims, Blocked: Blocking{Random: &RandomBlock{Density: opts.Density, Seed: opts.Seed}}}
		base := BenchRow{Dims: dims, Density: opts.Density}
		l, err := New(spec, Limits{MemoryBudget: 8 << 30})
		if err != nil {
			base.Err = err.Error()
			rows = append(rows, base)
			continue
		}
		base.Points = l.Points()
		if _, err := l.Census(ctx, opts.Workers); err != nil {
			base.Err = err.Error()
			rows = append(rows, base)
			continue
		}
		ex := l.ExplicitSize()
		base.ExplicitListBytes, base.ExplicitMatrixBytes = ex.ListBytes, ex.MatrixBytes
		start := centreOpen(l)
		type variant struct {
			name string
			opts PathOptions
		}
		vs := []variant{
			{"bfs-1core", PathOptions{Algorithm: AlgoBFS, Parallel: 1}},
			{"bfs-allcores", PathOptions{Algorithm: AlgoBFS, Parallel: opts.Workers}},
		}
		if opts.Catalytic {
			vs = append(vs, variant{"bfs-catalytic", PathOptions{Algorithm: AlgoBFS, Parallel: 1, Catalytic: true, Borrow: region}})
		}
		for _, v := range vs {
			row := base
			row.Case = v.name
			var best *ReachResult
			for range opts.Repeats {
				runtime.GC()
				res, err := l.ReachableWithin(ctx, start, -1, v.opts)
				if err != nil {
					row.Err = err.Error()
					break
				}
				if best == nil || res.Duration < best.Duration {
					best = &res
				}
			}
			if best != nil {
				row.Workers = best.Workers
				row.Visited = best.Count
				row.Seconds = best.Duration.Seconds()
				row.NodesPerSec = float64(best.Count) / row.Seconds
				row.CleanBytes = best.Memory.CleanBytes
				row.AccountedBytes = best.Memory.AccountedBytes
				row.BorrowedBytes = best.Memory.BorrowedBytes
				row.CatalyticSecs = (best.Memory.BorrowDuration + best.Memory.RestoreDuration).Seconds()
				row.ReductionVsList = best.Memory.ReductionVsAdjacencyList
				row.Note = best.Memory.CatalyticNote
			}
			rows = append(rows, row)
		}
		row := base
		row.Case, row.Workers = "explicit-csr", 1
		est := int64(ex.ListBytes) + 4*l.Points() + l.Points()/8 + int64(ex.Vertices)*4
		if opts.BaselineMaxBytes < 0 || est > opts.BaselineMaxBytes {
			row.Note = fmt.Sprintf("skipped: needs ~%s, over the baseline limit", humanBytes(float64(est)))
			rows = append(rows, row)
			continue
		}
		var bestRow *BenchRow
		for range opts.Repeats {
			runtime.GC()
			r := row
			benchExplicit(ctx, l, start, &r)
			if r.Err != "" || bestRow == nil || r.Seconds < bestRow.Seconds {
				bestRow = &r
			}
			if r.Err != "" {
				break
			}
		}
		rows = append(rows, *bestRow)
	}
	return rows
}

func benchExplicit(ctx context.Context, l *Lattice, start []int64, row *BenchRow) {
	m := startMeter()
	t0 := time.Now()
	src, _ := l.Index(start)
	g, s, err := buildCSRFrom(ctx, l, src)
	if err != nil {
		row.Err = err.Error()
		return
	}
	row.BuildSeconds = time.Since(t0).Seconds()
	t1 := time.Now()
	row.Visited = g.bfs(s)
	row.Seconds = time.Since(t1).Seconds()
	row.NodesPerSec = float64(row.Visited) / row.Seconds
	row.CleanBytes = heapAllocs() - m.start
	row.AccountedBytes = g.bytes()
	row.ReductionVsList = row.ExplicitListBytes / float64(row.CleanBytes)
	row.Note = fmt.Sprintf("CSR %s built (formula %s)", humanBytes(float64(g.bytes())), humanBytes(row.ExplicitListBytes))
	runtime.KeepAlive(g)
}

// centreOpen returns the open point nearest the centre (scanning outwards
// along axis 0).
func centreOpen(l *Lattice) []int64 {
	p := make([]int64, len(l.dims))
	for i, n := range l.dims {
		p[i] = n / 2
	}
	for k := int64(0); ; k++ {
		for _, sgn := range []int64{1, -1} {
			q := slices.Clone(p)
			q[0] = (p[0] + sgn*k%l.dims[0] + l.dims[0]) % l.dims[0]
			if b, _ := l.IsBlocked(q); !b {
				return q
			}
		}
	}
}

// csr is an explicit adjacency-list graph of the open points.
type csr struct {
	off []uint32 // V+1
	adj []uint32 // 2E
}

func (g *csr) vertices() int { return len(g.off) - 1 }
func (g *csr) bytes() int64  { return int64(len(g.off))*4 + int64(len(g.adj))*4 }

func buildCSR(l *Lattice) *csr {
	g, _, err := buildCSRFrom(context.Background(), l, 0)
	if err != nil {
		panic(err)
	}
	return g
}

// buildCSRFrom builds the CSR of the open subgraph and maps src to its
// vertex id. It needs a temporary index map of 4 bytes per point.
func buildCSRFrom(ctx context.Context, l *Lattice, src uint64) (*csr, uint32, error) {
	if l.n >= math.MaxUint32 {
		return nil, 0, fmt.Errorf("%w: explicit baseline supports fewer than 2^32 points", ErrTooManyPoints)
	}
	const none = math.MaxUint32
	rank := make([]uint32, l.n)
	var v uint32
	var deg uint64
	for idx := range l.n {
		if l.blocked(idx) {
			rank[idx] = none
			continue
		}
		rank[idx] = v
		v++
		l.forNeighbours(idx, func(u uint64) {
			if !l.blocked(u) {
				deg++
			}
		})
		if idx&(1<<20-1) == 0 && ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
	if deg >= math.MaxUint32 {
		return nil, 0, fmt.Errorf("%w: explicit baseline supports fewer than 2^32 edge ends", ErrTooManyPoints)
	}
	g := &csr{off: make([]uint32, v+1), adj: make([]uint32, deg)}
	var k uint32
	for idx := range l.n {
		r := rank[idx]
		if r == none {
			continue
		}
		g.off[r] = k
		l.forNeighbours(idx, func(u uint64) {
			if ru := rank[u]; ru != none {
				g.adj[k] = ru
				k++
			}
		})
	}
	g.off[v] = k
	return g, rank[src], nil
}

// bfs counts the vertices reachable from s (visited bitset + queue).
func (g *csr) bfs(s uint32) int64 {
	seen := make([]uint64, (g.vertices()+63)/64)
	queue := make([]uint32, 0, g.vertices())
	queue = append(queue, s)
	seen[s>>6] |= 1 << (s & 63)
	for i := 0; i < len(queue); i++ {
		u := queue[i]
		for _, w := range g.adj[g.off[u]:g.off[u+1]] {
			if seen[w>>6]&(1<<(w&63)) == 0 {
				seen[w>>6] |= 1 << (w & 63)
				queue = append(queue, w)
			}
		}
	}
	return int64(len(queue))
}

// SyntheticRegion returns n bytes of deterministic, log-like text: a
// stand-in for "memory that already holds other data" that compresses like
// real logs do (several-fold, not trivially).
func SyntheticRegion(n int) []byte {
	b := make([]byte, 0, n+256)
	x := uint64(0x1234567)
	levels := []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	paths := []string{"/mcp", "/mcp/files", "/mcp/search", "/healthz", "/metrics", "/mcp/git"}
	for i := 0; len(b) < n; i++ {
		x = splitmix(x)
		b = fmt.Appendf(b, "2026-01-%02d %02d:%02d:%02d.%03d %-5s req=%016x path=%s status=%d dur=%dus bytes=%d\n",
			1+x%28, x>>8%24, x>>16%60, x>>24%60, x>>32%1000, levels[x>>40%6], splitmix(x)>>uint(x%3*16),
			paths[x>>44%6], []int{200, 200, 200, 204, 404, 500}[x>>48%6], x>>50%5000, x>>54%65536)
	}
	return b[:n]
}

func humanBytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	if b >= 1024 {
		return fmt.Sprintf("%.3g %s", b, units[i])
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// FormatBenchTable renders rows as an aligned Markdown table.
func FormatBenchTable(rows []BenchRow) string {
	head := []string{"points", "case", "workers", "visited", "time", "Mnodes/s", "clean (TotalAlloc Δ)", "borrowed", "explicit lists", "explicit matrix", "lists ÷ clean", "note"}
	table := [][]string{head, make([]string, len(head))}
	for i := range head {
		table[1][i] = "---"
	}
	for _, r := range rows {
		pts := fmt.Sprintf("%.0e %v", float64(r.Points), r.Dims)
		line := make([]string, len(head))
		line[0], line[1] = pts, r.Case
		line[8], line[9] = humanBytes(r.ExplicitListBytes), humanBytes(r.ExplicitMatrixBytes)
		switch {
		case r.Err != "":
			line[11] = "error: " + r.Err
		case r.Visited == 0:
			line[11] = r.Note
		default:
			tm := fmt.Sprintf("%.3f s", r.Seconds)
			if r.BuildSeconds > 0 {
				tm += fmt.Sprintf(" (+%.2f s build)", r.BuildSeconds)
			}
			if r.CatalyticSecs > 0 {
				tm += fmt.Sprintf(" (of which %.3f s compress+restore)", r.CatalyticSecs)
			}
			borrowed := "—"
			if r.BorrowedBytes > 0 {
				borrowed = humanBytes(float64(r.BorrowedBytes))
			}
			line[2], line[3], line[4] = fmt.Sprint(r.Workers), fmt.Sprint(r.Visited), tm
			line[5], line[6], line[7] = fmt.Sprintf("%.1f", r.NodesPerSec/1e6), humanBytes(float64(r.CleanBytes)), borrowed
			line[10], line[11] = fmt.Sprintf("%.3g", r.ReductionVsList), r.Note
		}
		table = append(table, line)
	}
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 1, ' ', 0)
	for _, line := range table {
		for _, c := range line {
			fmt.Fprintf(w, "| %s\t", c)
		}
		fmt.Fprintln(w, "|")
	}
	w.Flush()
	return sb.String()
}

// Bounds of BenchOptions that Validate enforces: beyond them a run would
// take hours or more memory than any machine has, so a typo fails at once.
const (
	MaxBenchRepeats = 1000
	MaxBenchWorkers = 4096
	MaxBenchRegion  = min(16<<30, math.MaxInt) // 16 GiB, or what an int holds on 32-bit platforms
)

// Validate checks options given by a person (the command line): zero
// values mean defaults, anything else must be in range. Its messages
// name the option as the command line spells it.
func (o *BenchOptions) Validate() error {
	switch {
	case o.Repeats < 0 || o.Repeats > MaxBenchRepeats:
		return fmt.Errorf("--repeats must be 1 to %d (0: 1), got %d", MaxBenchRepeats, o.Repeats)
	case o.Workers < 0 || o.Workers > MaxBenchWorkers:
		return fmt.Errorf("--workers must be 0 (GOMAXPROCS) to %d, got %d", MaxBenchWorkers, o.Workers)
	case o.RegionBytes < 0 || o.RegionBytes > MaxBenchRegion:
		return fmt.Errorf("--region must be 0 (64 MiB) to %d bytes, got %d", MaxBenchRegion, o.RegionBytes)
	case !(o.Density > 0 && o.Density <= 1):
		return fmt.Errorf("--density must be in (0, 1], got %g", o.Density)
	}
	return nil
}

// ParseShape parses a lattice shape such as 1000x1000 or 100x100x100.
func ParseShape(v string) ([]int64, error) {
	var dims []int64
	for _, part := range strings.Split(v, "x") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a shape such as 1000x1000 (axis lengths ≥ 1 joined by x)", v)
		}
		dims = append(dims, n)
	}
	if len(dims) > MaxDims {
		return nil, fmt.Errorf("%q has more than %d axes", v, MaxDims)
	}
	return dims, nil
}

// MarshalJSON writes a row for `mcpedge lattice bench --json`, with
// snake_case names; a ratio that is not finite (nothing measured to
// divide by) is null, which JSON can hold and +Inf it can not.
func (r BenchRow) MarshalJSON() ([]byte, error) {
	finite := func(v float64) *float64 {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		Case                string   `json:"case"`
		Dims                []int64  `json:"dims"`
		Points              int64    `json:"points"`
		Density             float64  `json:"density"`
		Workers             int      `json:"workers"`
		Visited             int64    `json:"visited"`
		Seconds             *float64 `json:"seconds"`
		NodesPerSec         *float64 `json:"nodes_per_sec"`
		BuildSeconds        *float64 `json:"build_seconds,omitempty"`
		CleanBytes          int64    `json:"clean_bytes"`
		AccountedBytes      int64    `json:"accounted_bytes"`
		BorrowedBytes       int64    `json:"borrowed_bytes,omitempty"`
		CatalyticSecs       *float64 `json:"catalytic_seconds,omitempty"`
		ExplicitListBytes   *float64 `json:"explicit_list_bytes"`
		ExplicitMatrixBytes *float64 `json:"explicit_matrix_bytes"`
		ReductionVsList     *float64 `json:"reduction_vs_list"`
		Note                string   `json:"note,omitempty"`
		Err                 string   `json:"error,omitempty"`
	}{r.Case, r.Dims, r.Points, r.Density, r.Workers, r.Visited, finite(r.Seconds), finite(r.NodesPerSec), finite(r.BuildSeconds),
		r.CleanBytes, r.AccountedBytes, r.BorrowedBytes, finite(r.CatalyticSecs), finite(r.ExplicitListBytes), finite(r.ExplicitMatrixBytes),
		finite(r.ReductionVsList), r.Note, r.Err})
}
