package telemetry

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The cache reads at most once per ttl, and reset forces the next read.
func TestCachedQueueSnapshot(t *testing.T) {
	reads := 0
	get, reset := CachedQueueSnapshot(time.Hour, func() QueueSnapshot {
		reads++
		return QueueSnapshot{Open: true, Entries: int64(reads)}
	})
	if s := get(); s.Entries != 1 || s.Taken.IsZero() {
		t.Fatalf("first: %+v", s)
	}
	if s := get(); s.Entries != 1 || reads != 1 {
		t.Fatalf("cached: %+v after %d reads", s, reads)
	}
	reset()
	if s := get(); s.Entries != 2 {
		t.Fatalf("after reset: %+v", s)
	}
}

// The collector exports what the snapshot says: only the open gauge
// without a queue or when it could not be read, everything otherwise,
// with the oldest waiting entry's age per target.
func TestQueueCollector(t *testing.T) {
	now := time.Now()
	snap := QueueSnapshot{}
	reg := prometheus.NewRegistry()
	NewQueueMetrics(reg, func() QueueSnapshot { return snap })
	names := func() string {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "mcpedge_queue_") && mf.GetType().String() == "GAUGE" {
				out = append(out, mf.GetName())
			}
		}
		return strings.Join(out, " ")
	}
	if got := names(); got != "mcpedge_queue_open" {
		t.Errorf("without a queue: %s", got)
	}
	snap = QueueSnapshot{Open: true, Error: "queue: reading statistics: disk I/O error"}
	if got := names(); got != "mcpedge_queue_open" {
		t.Errorf("unreadable queue: %s", got)
	}
	snap = QueueSnapshot{Open: true, Taken: now, Entries: 3, Bytes: 10, MaxEntries: 4, MaxBytes: 100,
		Depth: []QueueDepth{
			{Target: "ev", State: "pending", Entries: 1, Oldest: now.Add(-time.Minute)},
			{Target: "ev", State: "delivering", Entries: 1, Oldest: now.Add(-2 * time.Minute)},
			{Target: "ev", State: "done", Entries: 1, Oldest: now.Add(-time.Hour)},
		},
		Keys: []QueueKey{{ID: 1, Used: 8192, Limit: 1 << 30}, {ID: 2, Used: 4096, Limit: 1 << 30, Active: true}}}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			k := mf.GetName()
			for _, lp := range m.GetLabel() {
				k += "," + lp.GetName() + "=" + lp.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				vals[k] = g.GetValue()
			}
		}
	}
	for k, want := range map[string]float64{
		"mcpedge_queue_open":                             1,
		"mcpedge_queue_entries,state=pending,target=ev":  1,
		"mcpedge_queue_entries,state=done,target=ev":     1,
		"mcpedge_queue_oldest_pending_seconds,target=ev": 120, // delivering counts as waiting; done does not
		"mcpedge_queue_usage_entries":                    3,
		"mcpedge_queue_limit_bytes":                      100,
		"mcpedge_queue_key_messages,active=false,key=1":  8192,
		"mcpedge_queue_key_messages,active=true,key=2":   4096,
		"mcpedge_queue_key_usage_ratio":                  4096.0 / (1 << 30),
	} {
		if got, ok := vals[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
}
