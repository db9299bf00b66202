package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFailureHandlingParse(t *testing.T) {
	type settings struct {
		Failures, HalfOpen, Retries int
		OpenFor                     time.Duration
		Tools                       map[string]Duration
	}
	get := func(u Upstream) settings {
		f, o, h := u.Breaker.Settings()
		return settings{Failures: f, HalfOpen: h, Retries: u.MaxRetries(), OpenFor: o, Tools: u.ToolTimeouts}
	}
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	tests := []struct {
		name string
		src  string
		want settings
	}{
		{"defaults", head, settings{Failures: 5, HalfOpen: 1, Retries: 2, OpenFor: 10 * time.Second}},
		{"everything set", head + `retries = 3
tool_timeouts = { "slow-tool" = "2m", "quick.one" = "500ms" }

[upstreams.breaker]
failures = 7
open_for = "300ms"
half_open_calls = 2
`, settings{Failures: 7, HalfOpen: 2, Retries: 3, OpenFor: 300 * time.Millisecond,
			Tools: map[string]Duration{"slow-tool": Duration(2 * time.Minute), "quick.one": Duration(500 * time.Millisecond)}}},
		{"breaker and retries off", head + "retries = 0\nbreaker = { failures = 0 }\n",
			settings{Failures: 0, HalfOpen: 1, Retries: 0, OpenFor: 10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := parseT(t, tt.src, nil)
			if ps != nil {
				t.Fatalf("problems: %q", ps)
			}
			if diff := cmp.Diff(tt.want, get(c.Upstreams[0])); diff != "" {
				t.Errorf("settings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailureHandlingProblems(t *testing.T) {
	const head = "[[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"retries out of range", head + "retries = 11\n",
			[]string{`c.toml:4:1: upstreams[0].retries: must be between 0 and 10, got 11`}},
		{"retries not an integer", head + "retries = \"2\"\n",
			[]string{`c.toml:4:1: upstreams[0].retries: expected integer, got string`}},
		{"breaker values", head + "[upstreams.breaker]\nfailures = -1\nopen_for = \"10\"\nhalf_open_calls = 0\nfailure = 3\n",
			[]string{
				`c.toml:5:1: upstreams[0].breaker.failures: must be between 0 (breaker off) and 1000, got -1`,
				`c.toml:6:1: upstreams[0].breaker.open_for: invalid duration "10": missing unit, e.g. "10s"`,
				`c.toml:7:1: upstreams[0].breaker.half_open_calls: must be between 1 and 100, got 0`,
				`c.toml:8:1: upstreams[0].breaker.failure: unknown key "failure" (did you mean "failures"?)`,
			}},
		{"zero open_for", head + "breaker = { open_for = \"0s\" }\n",
			[]string{`c.toml:4:13: upstreams[0].breaker.open_for: must be greater than 0, got 0s`}},
		{"breaker not a table", head + "breaker = 5\n",
			[]string{`c.toml:4:1: upstreams[0].breaker: expected table ([upstreams.breaker]), got integer`}},
		{"tool timeouts", head + "tool_timeouts = { \"slow\" = \"2x\", \"neg\" = \"-1s\", \"num\" = 30, \"ok\" = \"1s\" }\n",
			[]string{
				`c.toml:4:19: upstreams[0].tool_timeouts.slow: invalid duration "2x": want a number with a unit, e.g. "30s", "1m30s", "500ms"`,
				`c.toml:4:34: upstreams[0].tool_timeouts.neg: must be greater than 0, got -1s`,
				`c.toml:4:49: upstreams[0].tool_timeouts.num: expected a duration string such as "2m", got integer`,
			}},
		{"tool timeouts not a table", head + "tool_timeouts = \"1s\"\n",
			[]string{`c.toml:4:1: upstreams[0].tool_timeouts: expected table of durations, e.g. { "slow-tool" = "2m" }, got string`}},
		{"typo suggests the key", head + "retrys = 2\n",
			[]string{`c.toml:4:1: upstreams[0].retrys: unknown key "retrys" (did you mean "retries"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := parseT(t, tt.src, nil)
			if diff := cmp.Diff(tt.want, ps); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailureKey(t *testing.T) {
	five, zero := 5, 0
	base := FailureHandling{}
	same := FailureHandling{Breaker: Breaker{Failures: &five, OpenFor: DefaultBreakerOpenFor}}
	if base.FailureKey() != same.FailureKey() {
		t.Error("explicit defaults change the key")
	}
	for name, f := range map[string]FailureHandling{
		"breaker off":  {Breaker: Breaker{Failures: &zero}},
		"open_for":     {Breaker: Breaker{OpenFor: Duration(time.Second)}},
		"half open":    {Breaker: Breaker{HalfOpenCalls: 3}},
		"retries":      {Retries: &zero},
		"tool timeout": {ToolTimeouts: map[string]Duration{"x": Duration(time.Second)}},
	} {
		if f.FailureKey() == base.FailureKey() {
			t.Errorf("%s: key unchanged", name)
		}
	}
	// The failure settings never force a reconnect.
	u := Upstream{Name: "a", Transport: TransportHTTP, URL: "http://x/mcp"}
	v := u
	v.Retries = &zero
	if u.Fingerprint() != v.Fingerprint() {
		t.Error("retries changed the fingerprint")
	}
}
