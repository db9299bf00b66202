// Package bench holds mcpedge's performance benchmarks.
//
// The benchmark command is bench/cmd/mcpbench (see bench/README.md and
// docs/benchmarks.md); the upstreams it drives are bench/upstream/sdkecho and
// bench/upstream/minecho. This package itself only has in-process Go
// benchmarks (go test -run '^$' -bench . ./bench) that put the gateway between
// a raw client and the minimal echo upstream over loopback httptest servers.
package bench
