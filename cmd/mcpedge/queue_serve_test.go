package main

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
)

// A [queue] change needs a restart; the same [queue] does not.
func TestRestartNeededQueue(t *testing.T) {
	a, b := config.Default(), config.Default()
	if restartNeeded(a, b) {
		t.Fatal("identical configurations need a restart")
	}
	b.Queue.MaxEntries++
	if !restartNeeded(a, b) {
		t.Error("a changed max_entries does not need a restart")
	}
	b = config.Default()
	b.Queue.Enabled = false
	if !restartNeeded(a, b) {
		t.Error("a disabled queue does not need a restart")
	}
}
