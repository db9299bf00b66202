package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestQueueParse(t *testing.T) {
	c, ps := parseT(t, `
[queue]
enabled = false
max_entries = 500
max_bytes = 10485760
tenant_max_entries = 50
tenant_max_bytes = 1048576
max_call_bytes = 65536
max_attempts = 3
keep_done = "1h"
keep_failed = "48h"
backoff_min = "2s"
backoff_max = "1m"
`, nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	want := Queue{Enabled: false, MaxEntries: 500, MaxBytes: 10 << 20, TenantMaxEntries: 50, TenantMaxBytes: 1 << 20,
		MaxCallBytes: 64 << 10, MaxAttempts: 3, KeepDone: Duration(time.Hour), KeepFailed: Duration(48 * time.Hour),
		BackoffMin: Duration(2 * time.Second), BackoffMax: Duration(time.Minute)}
	if diff := cmp.Diff(want, c.Queue); diff != "" {
		t.Errorf("queue mismatch (-want +got):\n%s", diff)
	}

	c, ps = parseT(t, "[server]\nlisten = \"127.0.0.1:1\"\n", nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	if diff := cmp.Diff(DefaultQueue(), c.Queue); diff != "" || !c.Queue.Enabled {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	// A partial table keeps the other defaults.
	c, ps = parseT(t, "[queue]\nmax_attempts = 4\n", nil)
	if ps != nil {
		t.Fatalf("problems: %q", ps)
	}
	if c.Queue.MaxAttempts != 4 || c.Queue.MaxEntries != DefaultQueueMaxEntries || !c.Queue.Enabled {
		t.Errorf("partial table: %+v", c.Queue)
	}
	// The desktop-client JSON has no [queue]: defaults.
	mc, err := ParseMCPServers("c.json", []byte(`{"mcpServers": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if mc.Queue != DefaultQueue() {
		t.Errorf("mcpServers import queue: %+v", mc.Queue)
	}
}

func TestQueueProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"types", "[queue]\nenabled = \"yes\"\nmax_entries = \"many\"\nkeep_done = 60\nbackoff_min = \"soon\"\nmax_entires = 1\n", []string{
			`c.toml:2:1: queue.enabled: expected boolean (true or false), got string`,
			`c.toml:3:1: queue.max_entries: expected integer, got string`,
			`c.toml:4:1: queue.keep_done: expected a duration string with a unit, e.g. "60s", got integer`,
			`c.toml:5:1: queue.backoff_min: `,
			`c.toml:6:1: queue.max_entires: unknown key`,
		}},
		{"not a table", "queue = 3\n", []string{`c.toml:1:1: queue: expected table ([queue]), got integer`}},
		{"ranges", "[queue]\nmax_entries = 0\nmax_bytes = -1\ntenant_max_entries = 20000000\ntenant_max_bytes = 10\nmax_call_bytes = 100000000\nmax_attempts = 0\nkeep_done = \"0s\"\nkeep_failed = \"9000h\"\nbackoff_min = \"-1s\"\nbackoff_max = \"25h\"\n", []string{
			`c.toml:2:1: queue.max_entries: must be between 1 and 10000000, got 0`,
			`c.toml:3:1: queue.max_bytes: must be between 1024 and 1099511627776, got -1`,
			`c.toml:4:1: queue.tenant_max_entries: must be between 1 and 10000000, got 20000000`,
			`c.toml:5:1: queue.tenant_max_bytes: must be between 1024 and 1099511627776, got 10`,
			`c.toml:6:1: queue.max_call_bytes: must be between 1024 and 67108864, got 100000000`,
			`c.toml:7:1: queue.max_attempts: must be between 1 and 1000, got 0`,
			`c.toml:8:1: queue.keep_done: must be greater than 0 and at most 8784h0m0s, got 0s`,
			`c.toml:9:1: queue.keep_failed: must be greater than 0 and at most 8784h0m0s, got 9000h0m0s`,
			`c.toml:10:1: queue.backoff_min: must be greater than 0 and at most 24h0m0s, got -1s`,
			`c.toml:11:1: queue.backoff_max: must be greater than 0 and at most 24h0m0s, got 25h0m0s`,
		}},
		{"shares", "[queue]\nmax_entries = 10\ntenant_max_entries = 11\nmax_bytes = 2048\ntenant_max_bytes = 4096\n", []string{
			`c.toml:3:1: queue.tenant_max_entries: must not be more than max_entries (10), got 11: one tenant's share is part of the whole queue`,
			`c.toml:5:1: queue.tenant_max_bytes: must not be more than max_bytes (2048), got 4096: one tenant's share is part of the whole queue`,
		}},
		{"call larger than a share", "[queue]\ntenant_max_bytes = 4096\nmax_call_bytes = 8192\n", []string{
			`c.toml:3:1: queue.max_call_bytes: must not be more than tenant_max_bytes (4096), got 8192: such a call could never be queued`,
		}},
		{"backoff order", "[queue]\nbackoff_min = \"1m\"\nbackoff_max = \"1s\"\n", []string{
			`c.toml:3:1: queue.backoff_max: must not be less than backoff_min (1m0s), got 1s`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := parseT(t, tc.src, nil)
			if len(ps) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(ps), len(tc.want), strings.Join(ps, "\n"))
			}
			for i, w := range tc.want {
				if len(ps[i]) < len(w) || ps[i][:len(w)] != w {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, ps[i], w)
				}
			}
		})
	}
}
