package config

import (
	"strings"
	"testing"
)

func TestRestartMessage(t *testing.T) {
	got := RestartMessage([]string{"store.url", "queue.max_entries", "store.key"})
	if !strings.HasPrefix(got, "[store], [queue] changed; restart to apply them: store.url, queue.max_entries, store.key (") {
		t.Errorf("RestartMessage = %q", got)
	}
	if !strings.Contains(got, strings.Join(LiveKeys(), ", ")+" are reloaded now)") {
		t.Errorf("RestartMessage does not name the live keys: %q", got)
	}
}
