package main

import (
	"os"
	"runtime/debug"
)

// Garbage-collector defaults for a proxy. Commands run with Go's GOGC=100;
// `mcpedge serve` lets internal/gctune raise it to 400 while calls flow
// and lower it again when the gateway is idle. The soft memory limit makes
// the collector work harder before the heap grows past it, so memory stays
// bounded on small devices. Both yield to the standard GOGC and GOMEMLIMIT
// environment variables.
const defaultMemoryLimit = 256 << 20

func tuneGC() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
