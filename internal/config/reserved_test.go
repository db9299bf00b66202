package config

import (
	"strings"
	"testing"
)

func TestReservedNames(t *testing.T) {
	_, err := Parse("r.toml", []byte("[[upstreams]]\nname = \"lattice\"\ncommand = \"x\"\n"))
	if err == nil || !strings.Contains(err.Error(), "r.toml:2:") || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("reserved name accepted or badly reported: %v", err)
	}
	c, err := ParseMCPServers("d.json", []byte(`{"mcpServers":{"lattice":{"command":"x"},"mcpedge":{"command":"y"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range c.Upstreams {
		if ReservedNames[u.Name] != "" {
			t.Errorf("imported server kept the reserved name %q", u.Name)
		}
	}
}
