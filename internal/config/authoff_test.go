package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestAuthOffOnlyOnLoopback: auth.mode = "off" is refused on every
// listen address that is not loopback; in particular ":8080" (an empty
// host) listens on every interface and is not loopback.
func TestAuthOffOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		listen   string
		loopback bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.2:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{":8080", false},
		{"0.0.0.0:8080", false},
		{"[::]:8080", false},
		{"192.168.1.10:8080", false},
		{"gateway.internal:8080", false},
		{"localhost.example.com:8080", false},
		{"8080", false},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			if got := ListenIsLoopback(tt.listen); got != tt.loopback {
				t.Errorf("ListenIsLoopback(%q) = %v, want %v", tt.listen, got, tt.loopback)
			}
			src := "[auth]\nmode = \"off\"\n[server]\nlisten = " + strconv.Quote(tt.listen) + "\n"
			_, ps := parseT(t, src, nil)
			refused := strings.Contains(strings.Join(ps, "\n"), `auth.mode: "off" is only allowed`)
			if refused == tt.loopback {
				t.Errorf("auth.mode = \"off\" with listen %q: refused = %v, want %v (problems: %q)", tt.listen, refused, !tt.loopback, ps)
			}
		})
	}
}
