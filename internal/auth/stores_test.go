package auth

import (
	"testing"

	"github.com/mcpedge/mcpedge/internal/store"
)

// newTestStore returns an empty store for one test.
func newTestStore(t testing.TB) store.Store {
	t.Helper()
	return newFakeStore()
}
