package main

import (
	"os"
	"runtime/debug"
)

// Garbage-collector defaults for a proxy. Forwarding a call through the MCP
// SDK allocates short-lived buffers (hundreds of kilobytes per call, see
// docs/benchmarks.md), so with Go's default GOGC=100 the collector runs
// constantly under load and costs more CPU than the forwarding itself. A
// higher GOGC trades some heap for far fewer collections; the soft memory
// limit makes the collector work harder again before the heap grows past it,
// so memory stays bounded on small devices. Both yield to the standard GOGC
// and GOMEMLIMIT environment variables.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 256 << 20
)

func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}
