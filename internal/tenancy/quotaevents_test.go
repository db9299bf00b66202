package tenancy

import (
	"slices"
	"testing"

	"github.com/mcpedge/mcpedge/internal/events"
)

func TestQuotaThresholds(t *testing.T) {
	// Walk every unit of a few quotas: each mark is crossed by exactly
	// one call.
	for _, quota := range []int64{1, 2, 5, 10, 11, 1000} {
		var warn, full int
		for used := int64(1); used <= quota; used++ {
			got := quotaThresholds(used, quota)
			if slices.Contains(got, events.QuotaWarning) {
				warn++
				if used*100 < quota*QuotaWarnPercent {
					t.Errorf("quota %d: warned at %d, below 80 %%", quota, used)
				}
			}
			if slices.Contains(got, events.QuotaExhausted) {
				full++
				if used != quota {
					t.Errorf("quota %d: exhausted at %d", quota, used)
				}
			}
		}
		wantWarn := 1
		if (quota*QuotaWarnPercent+99)/100 == quota {
			wantWarn = 0 // 80 % rounds up to the whole quota: only "exhausted"
		}
		if warn != wantWarn || full != 1 {
			t.Errorf("quota %d: %d warnings, %d exhausted; want %d and 1", quota, warn, full, wantWarn)
		}
	}
	if got := quotaThresholds(0, 0); got != nil {
		t.Errorf("no quota: %v", got)
	}
}
