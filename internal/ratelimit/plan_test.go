package ratelimit

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name    string
		plan    Plan
		wantErr string
	}{
		{"zero plan is valid (unlimited)", Plan{}, ""},
		{"rates only", Plan{KeyRate: 0.5, TenantRate: 3, IPRate: 10}, ""},
		{"negative rate", Plan{Name: "x", KeyRate: -1}, `plan "x": key_rate -1`},
		{"NaN rate", Plan{TenantRate: math.NaN()}, "tenant_rate NaN"},
		{"infinite rate", Plan{IPRate: math.Inf(1)}, "ip_rate +Inf"},
		{"huge rate", Plan{IPRate: 1e9}, "ip_rate"},
		{"negative burst", Plan{KeyBurst: -2}, "key_burst -2"},
		{"huge burst", Plan{TenantBurst: 1 << 30}, "tenant_burst"},
		{"negative quota", Plan{MonthlyQuota: -5}, "monthly_quota -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEffBurst(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
		want  int
	}{{1, 5, 5}, {2.5, 0, 3}, {0.01, 0, 1}, {maxRate, 0, maxRate}} {
		if got := effBurst(tt.rate, tt.burst); got != tt.want {
			t.Errorf("effBurst(%v, %d) = %d, want %d", tt.rate, tt.burst, got, tt.want)
		}
	}
	for _, r := range []float64{0, -1, math.NaN(), math.Inf(1), maxRate * 2} {
		if limited(r) {
			t.Errorf("limited(%v) = true", r)
		}
	}
}

func TestMonthOf(t *testing.T) {
	for _, tt := range []struct {
		t    time.Time
		next time.Time
	}{
		{time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		// 1 March 00:30 in UTC+2 is still February in UTC.
		{time.Date(2026, 3, 1, 0, 30, 0, 0, time.FixedZone("EET", 2*3600)), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		m, next := monthOf(tt.t)
		if !next.Equal(tt.next) {
			t.Errorf("monthOf(%v) next = %v, want %v", tt.t, next, tt.next)
		}
		if !monthStart(m + 1).Equal(next) {
			t.Errorf("monthStart(%d+1) = %v, want %v", m, monthStart(m+1), next)
		}
		if s := monthStart(m); !s.Before(next) || s.AddDate(0, 1, 0) != next {
			t.Errorf("monthStart(%d) = %v", m, s)
		}
	}
}
