package config

import (
	"strings"
	"testing"
	"time"
)

func TestMeteringDefaults(t *testing.T) {
	c, ps := parseT(t, "", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	if !c.Metering.Enabled || c.Metering.FlushInterval != DefaultMeteringFlush || c.Metering.Retention != DefaultMeteringRetention {
		t.Errorf("default [metering] = %+v", c.Metering)
	}
}

func TestMeteringValid(t *testing.T) {
	c, ps := parseT(t, "[metering]\nenabled = false\nflush_interval = \"30s\"\nretention = \"0s\"\n", nil)
	if ps != nil {
		t.Fatal(ps)
	}
	if c.Metering.Enabled || c.Metering.FlushInterval.D() != 30*time.Second || c.Metering.Retention != 0 {
		t.Errorf("[metering] = %+v", c.Metering)
	}
}

func TestMeteringProblems(t *testing.T) {
	for src, want := range map[string]string{
		"[metering]\nflush_interval = \"10ms\"\n": `metering.flush_interval: must be between 1s and 1h, got 10ms`,
		"[metering]\nflush_interval = \"2h\"\n":   `metering.flush_interval: must be between 1s and 1h`,
		"[metering]\nretention = \"1h\"\n":        `metering.retention: must be 0 (keep forever) or at least 48h`,
		"[metering]\nenabled = \"yes\"\n":         `metering.enabled`,
		"[metering]\nflush = \"1s\"\n":            `flush`,
	} {
		_, ps := parseT(t, src, nil)
		if got := strings.Join(ps, "\n"); !strings.Contains(got, want) {
			t.Errorf("%q: problems %q do not contain %q", src, got, want)
		}
	}
}
