package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/lattice"
	"github.com/mcpedge/mcpedge/internal/latticesvc"
)

// latticeLimits converts the [lattice] table to the service's limits.
func latticeLimits(cfg *config.Config) latticesvc.Limits {
	l := cfg.Lattice
	return latticesvc.Limits{
		MaxPoints:             l.MaxPoints,
		MaxInlineBlockedCells: l.MaxInlineBlockedCells,
		MaxPathPoints:         l.MaxPathPoints,
		OperationTimeout:      l.OperationTimeout.D(),
		MaxLattices:           l.MaxLattices,
	}
}

// newLatticeService creates the built-in lattice service over the store:
// definitions are scoped by the caller's tenant (single-user mode acts as
// the bootstrap tenant), limited by the caller's plan, and lookups of
// another tenant's ids are audited.
func newLatticeService(cfg *config.Config, log *slog.Logger, sec *securityStack) *latticesvc.Service {
	o := latticesvc.Options{
		DataDir: cfg.Server.DataDir,
		Limits:  latticeLimits(cfg),
		Logger:  log.With("upstream", "lattice"),
		Version: version,
	}
	if sec != nil {
		o.Store = sec.Store
		o.ImportTenant = sec.Tenant.ID
		if cfg.Auth.Mode == config.AuthOff {
			o.DefaultTenant = sec.Tenant.ID
		}
		o.Audit = sec.Audit.Record
		o.PlanLimits = func(plan string) latticesvc.Limits {
			p := sec.Policy.Plan(plan)
			return latticesvc.Limits{MaxPoints: p.LatticeMaxPoints, OperationTimeout: p.LatticeTimeout.D()}
		}
	}
	return latticesvc.New(o)
}

func cmdLattice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "bench" {
		return usageError{errors.New("usage: mcpedge lattice bench [--large] [--3d] [--shape DIMS] [--repeats N] [--catalytic=false] [--workers N] [--baseline-max BYTES] [--region BYTES]")}
	}
	return cmdLatticeBench(ctx, args[1:], stdout, stderr)
}

// shapesFlag collects --shape values such as 1000x1000 or 100x100x100.
type shapesFlag [][]int64

func (s *shapesFlag) String() string { return fmt.Sprint([][]int64(*s)) }

func (s *shapesFlag) Set(v string) error {
	var dims []int64
	for _, part := range strings.Split(v, "x") {
		n, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a shape such as 1000x1000 (axis lengths ≥ 1 joined by x)", v)
		}
		dims = append(dims, n)
	}
	if len(dims) > lattice.MaxDims {
		return fmt.Errorf("%q has more than %d axes", v, lattice.MaxDims)
	}
	*s = append(*s, dims)
	return nil
}

func cmdLatticeBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lattice bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mcpedge lattice bench [flags]\n\n"+
			"Measures breadth-first search over lattices with 20 %% random blocking: one core, all\n"+
			"cores, catalytic (borrowing a region of synthetic log text) and an explicit\n"+
			"adjacency-list baseline, and prints throughput and memory per case. The default\n"+
			"(10^6 and 10^7 points) takes seconds; --large adds 10^8 points.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var opts lattice.BenchOptions
	var shapes shapesFlag
	large := fs.Bool("large", false, "add the 10^8-point lattice (10000x10000, or 464x464x465 with --3d); takes 15 s to a minute")
	threeD := fs.Bool("3d", false, "use cubic 3-D shapes (100^3, 215x215x216) instead of 2-D ones")
	fs.Var(&shapes, "shape", "measure this `shape` instead of the defaults, e.g. 2000x2000 (repeatable)")
	fs.BoolVar(&opts.Catalytic, "catalytic", true, "add catalytic-mode rows")
	fs.IntVar(&opts.Repeats, "repeats", 1, "runs per case; the fastest is kept")
	fs.IntVar(&opts.Workers, "workers", 0, "workers for the all-cores rows (0: GOMAXPROCS)")
	fs.Int64Var(&opts.BaselineMaxBytes, "baseline-max", 0, "largest explicit baseline in `bytes` (0: 1 GiB, negative: none)")
	fs.IntVar(&opts.RegionBytes, "region", 0, "`bytes` of the region catalytic rows borrow from (0: 64 MiB)")
	fs.Float64Var(&opts.Density, "density", 0.2, "random blocking density, in (0, 1]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("lattice bench: unexpected argument %q", fs.Arg(0))}
	}
	if !(opts.Density > 0 && opts.Density <= 1) {
		return usageError{fmt.Errorf("lattice bench: --density must be in (0, 1], got %g", opts.Density)}
	}
	opts.Include1e8 = *large
	switch {
	case len(shapes) > 0:
		opts.Shapes = shapes
	case *threeD:
		opts.Shapes = [][]int64{{100, 100, 100}, {215, 215, 216}}
		if *large {
			opts.Shapes = append(opts.Shapes, []int64{464, 464, 465})
		}
	}
	// Measure the engine, not the gateway's collector tuning (tuneGC): Go's
	// defaults, unless GOGC or GOMEMLIMIT say otherwise.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(100)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(math.MaxInt64)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	rows := lattice.RunBench(ctx, opts)
	fmt.Fprintf(stdout, "mcpedge %s, %s, GOMAXPROCS=%d, %s\n\n", version, runtime.Version(), runtime.GOMAXPROCS(0), cpuModel())
	fmt.Fprint(stdout, lattice.FormatBenchTable(rows))
	if ctx.Err() != nil {
		return errors.New("interrupted")
	}
	for _, r := range rows {
		if r.Err != "" {
			return fmt.Errorf("case %s on %v failed: %s", r.Case, r.Dims, r.Err)
		}
	}
	return nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
