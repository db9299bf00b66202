package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpedge/mcpedge/internal/config"
)

// TestReadinessChecks: a failing required component makes /readyz 503 and
// says why; concurrent probes share one run of the checks; a check that
// hangs is bounded by readinessTimeout.
func TestReadinessChecks(t *testing.T) {
	var runs atomic.Int64
	var fail atomic.Bool
	var hang atomic.Bool
	store := ReadinessCheck{Name: "store", Kind: "postgres", Check: func(ctx context.Context) error {
		runs.Add(1)
		if hang.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		if fail.Load() {
			return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
		}
		return nil
	}}
	_, url, _ := startTestGateway(t, config.Default(), true, func(g *Gateway) { g.SetReadinessChecks(store) })
	get := func() (int, Readiness) {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r Readiness
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r
	}
	code, r := get()
	if code != http.StatusOK || !r.Ready || len(r.Components) == 0 || r.Components[0].Name != "store" || r.Components[0].State != "up" || !r.Components[0].Required {
		t.Fatalf("healthy: %d %+v", code, r)
	}

	// Concurrent probes within readinessTTL run the checks once.
	time.Sleep(readinessTTL + 50*time.Millisecond)
	before := runs.Load()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { get() })
	}
	wg.Wait()
	if n := runs.Load() - before; n != 1 {
		t.Fatalf("20 concurrent probes ran the check %d times, want 1", n)
	}

	fail.Store(true)
	time.Sleep(readinessTTL + 50*time.Millisecond)
	code, r = get()
	if code != http.StatusServiceUnavailable || r.Ready || r.Components[0].State != "down" || r.Components[0].Error == "" {
		t.Fatalf("store down: %d %+v", code, r)
	}

	fail.Store(false)
	hang.Store(true)
	time.Sleep(readinessTTL + 50*time.Millisecond)
	// A check that never returns is cut off: the probe gets its answer.
	code, r = get()
	if code != http.StatusServiceUnavailable || r.Components[0].State != "down" {
		t.Fatalf("store hanging: %d %+v", code, r)
	}
}
