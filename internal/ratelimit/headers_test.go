package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" means absent
	}{
		{
			name: "allowed",
			d:    Decision{Allowed: true, Limit: 10, Remaining: 7, Reset: 2500 * time.Millisecond, Dimension: DimKey},
			want: map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "3", "Retry-After": ""},
		},
		{
			name: "denied",
			d:    Decision{Limit: 10, Remaining: 0, Reset: 9 * time.Second, RetryAfter: 100 * time.Millisecond, Dimension: DimTenant},
			want: map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "9", "Retry-After": "1"},
		},
		{
			name: "denied by quota",
			d:    Decision{Limit: 10000, Reset: 36 * time.Hour, RetryAfter: 36 * time.Hour, Dimension: DimQuota},
			want: map[string]string{"RateLimit-Limit": "10000", "RateLimit-Remaining": "0", "RateLimit-Reset": "129600", "Retry-After": "129600"},
		},
		{
			name: "full bucket",
			d:    Decision{Allowed: true, Limit: 5, Remaining: 5},
			want: map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "5", "RateLimit-Reset": "0"},
		},
		{
			name: "unlimited writes nothing",
			d:    Decision{Allowed: true},
			want: map[string]string{"RateLimit-Limit": "", "RateLimit-Remaining": "", "RateLimit-Reset": "", "Retry-After": ""},
		},
		{
			name: "denial without a limit still says when to retry",
			d:    Decision{RetryAfter: 0},
			want: map[string]string{"RateLimit-Limit": "", "Retry-After": "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			SetHeaders(h, tt.d)
			for k, want := range tt.want {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for k := range h {
				if http.CanonicalHeaderKey(k) != k {
					t.Errorf("header key %q is not canonical; Header.Get would miss it", k)
				}
			}
		})
	}
}

func TestCeilSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		-time.Second: 0, 0: 0, 1: 1, time.Second: 1, time.Second + 1: 2,
		1<<63 - 1: 9223372037,
	} {
		if got := ceilSeconds(d); got != want {
			t.Errorf("ceilSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
