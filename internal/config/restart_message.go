package config

import (
	"fmt"
	"slices"
	"strings"
)

// RestartMessage says which tables changed in ways only a restart
// applies, e.g. "[store], [queue] changed; restart to apply them: store.url,
// queue.max_entries (upstreams, lattice, routing, plans and audit.arguments
// are reloaded now)".
func RestartMessage(keys []string) string {
	var tables []string
	for _, k := range keys {
		t := "[" + strings.SplitN(k, ".", 2)[0] + "]"
		if !slices.Contains(tables, t) {
			tables = append(tables, t)
		}
	}
	return fmt.Sprintf("%s changed; restart to apply them: %s (%s are reloaded now)",
		strings.Join(tables, ", "), strings.Join(keys, ", "), strings.Join(LiveKeys(), ", "))
}
