// Command latticebench prints the lattice engine's benchmark table (the same
// as the planned `mcpedge lattice bench`).
//
//	go run ./internal/lattice/latticebench [-1e8] [-catalytic] [-3d] [-repeats n]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"

	"github.com/mcpedge/mcpedge/internal/lattice"
)

func main() {
	var opts lattice.BenchOptions
	with1e8 := flag.Bool("1e8", false, "include the 10^8-point lattice")
	threeD := flag.Bool("3d", false, "use cubic 3-D shapes instead of 2-D ones")
	flag.BoolVar(&opts.Catalytic, "catalytic", true, "add catalytic-mode rows")
	flag.IntVar(&opts.Repeats, "repeats", 3, "runs per case (the fastest is kept)")
	flag.IntVar(&opts.Workers, "workers", 0, "workers for the all-cores rows (0: GOMAXPROCS)")
	flag.Int64Var(&opts.BaselineMaxBytes, "baseline-max", 0, "largest explicit baseline in bytes (0: 1 GiB, <0: none)")
	flag.IntVar(&opts.RegionBytes, "region", 0, "bytes of the borrowed region (0: 64 MiB)")
	flag.Parse()
	opts.Include1e8 = *with1e8
	if *threeD {
		opts.Shapes = [][]int64{{100, 100, 100}, {215, 215, 216}}
		if *with1e8 {
			opts.Shapes = append(opts.Shapes, []int64{464, 464, 465})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rows := lattice.RunBench(ctx, opts)
	fmt.Printf("%s, GOMAXPROCS=%d, %s\n\n", runtime.Version(), runtime.GOMAXPROCS(0), cpuModel())
	fmt.Print(lattice.FormatBenchTable(rows))
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
