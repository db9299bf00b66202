package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcpedge/mcpedge/internal/cmdline"
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

func (a *app) latticeCmd() *cobra.Command {
	var (
		opts          lattice.BenchOptions
		shapes        shapesFlag
		large, threeD bool
		asJSON        bool
	)
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the built-in lattice engine and print a table",
		Long: `Measures breadth-first search over lattices with 20 % random blocking: one core, all
cores, catalytic (borrowing a region of synthetic log text) and an explicit
adjacency-list baseline, and prints throughput and memory per case. The default
(10^6 and 10^7 points) takes seconds; --large adds 10^8 points.`,
		Example: "  mcpedge lattice bench --shape 64x64 --catalytic=false --baseline-max -1",
		Args:    posArgs(),
		PreRunE: func(*cobra.Command, []string) error {
			if err := opts.Validate(); err != nil {
				return cmdline.Usagef("lattice bench: %v", err)
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			opts.Include1e8 = large
			switch {
			case len(shapes) > 0:
				opts.Shapes = shapes
			case threeD:
				opts.Shapes = [][]int64{{100, 100, 100}, {215, 215, 216}}
				if large {
					opts.Shapes = append(opts.Shapes, []int64{464, 464, 465})
				}
			}
			// Measure the engine, not the gateway's collector tuning
			// (tuneGC): Go's defaults, unless GOGC or GOMEMLIMIT say
			// otherwise.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(100)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(math.MaxInt64)
			}
			ctx, stop := interruptible(c.Context())
			defer stop()
			rows := lattice.RunBench(ctx, opts)
			if asJSON {
				if err := cmdline.PrintJSON(a.stdout, map[string]any{
					"version": version, "go": runtime.Version(), "gomaxprocs": runtime.GOMAXPROCS(0), "cpu": cpuModel(), "rows": rows,
				}); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "mcpedge %s, %s, GOMAXPROCS=%d, %s\n\n", version, runtime.Version(), runtime.GOMAXPROCS(0), cpuModel())
				fmt.Fprint(a.stdout, lattice.FormatBenchTable(rows))
			}
			if ctx.Err() != nil {
				return errors.New("interrupted")
			}
			for _, r := range rows {
				if r.Err != "" {
					return fmt.Errorf("case %s on %v failed: %s", r.Case, r.Dims, r.Err)
				}
			}
			return nil
		},
	}
	f := bench.Flags()
	f.BoolVar(&large, "large", false, "add the 10^8-point lattice (10000x10000, or 464x464x465 with --3d); takes 15 s to a minute")
	f.BoolVar(&threeD, "3d", false, "use cubic 3-D shapes (100^3, 215x215x216) instead of 2-D ones")
	f.Var(&shapes, "shape", "measure this `SHAPE` instead of the defaults, e.g. 2000x2000 (repeatable)")
	f.BoolVar(&opts.Catalytic, "catalytic", true, "add catalytic-mode rows")
	f.IntVar(&opts.Repeats, "repeats", 1, fmt.Sprintf("runs per case, 1 to %d; the fastest is kept", lattice.MaxBenchRepeats))
	f.IntVar(&opts.Workers, "workers", 0, fmt.Sprintf("workers for the all-cores rows, 0 to %d (0: GOMAXPROCS)", lattice.MaxBenchWorkers))
	f.Int64Var(&opts.BaselineMaxBytes, "baseline-max", 0, "largest explicit baseline in `BYTES` (0: 1 GiB, negative: none)")
	f.IntVar(&opts.RegionBytes, "region", 0, fmt.Sprintf("`BYTES` of the region catalytic rows borrow from, 0 to %d (0: 64 MiB)", lattice.MaxBenchRegion))
	f.Float64Var(&opts.Density, "density", 0.2, "random blocking density, in (0, 1]")
	jsonFlag(bench, &asJSON)
	return group("lattice", "The built-in lattice engine (lattice bench: benchmark it)", bench)
}

// shapesFlag collects --shape values such as 1000x1000 or 100x100x100.
type shapesFlag [][]int64

func (s *shapesFlag) String() string { return fmt.Sprint([][]int64(*s)) }

// Type names the value in help.
func (s *shapesFlag) Type() string { return "shape" }

func (s *shapesFlag) Set(v string) error {
	dims, err := lattice.ParseShape(v)
	if err != nil {
		return err
	}
	*s = append(*s, dims)
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
