package config

import (
	"strings"
	"testing"
)

func TestPinPolicy(t *testing.T) {
	const up = "[[upstreams]]\nname = \"a\"\ncommand = \"x\"\n"
	tests := []struct {
		name, src, want, problem string
	}{
		{"default", up, PinHold, ""},
		{"hold", up + "pin = \"hold\"\n", PinHold, ""},
		{"block", up + "pin = \"block\"\n", PinBlock, ""},
		{"warn", up + "pin = \"warn\"\n", PinWarn, ""},
		{"off", up + "pin = \"off\"\n", PinOff, ""},
		{"unknown", up + "pin = \"sometimes\"\n", "", `upstreams[0].pin: must be "hold", "block", "warn" or "off", got "sometimes"`},
		{"not a string", up + "pin = true\n", "", "upstreams[0].pin: expected string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ps := parseT(t, tt.src, nil)
			if tt.problem != "" {
				if len(ps) != 1 || !strings.Contains(ps[0], tt.problem) {
					t.Fatalf("problems %q, want one containing %q", ps, tt.problem)
				}
				return
			}
			if len(ps) != 0 {
				t.Fatalf("problems: %q", ps)
			}
			if got := c.Upstreams[0].EffectivePin(); got != tt.want {
				t.Errorf("EffectivePin = %q, want %q", got, tt.want)
			}
		})
	}
}
