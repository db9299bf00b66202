package open

import (
	"context"
	"strings"
	"testing"
)

// A sqlite URL carrying credentials is refused without echoing them (a
// fuzzing find: the password used to appear in the error, and a directory
// named after it was created in the data directory).
func TestSQLiteURLWithCredentials(t *testing.T) {
	for _, dataDir := range []string{"", t.TempDir()} {
		_, err := Open(context.Background(), "sqlite://u:hunter2@db.example/x.db", dataDir)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("data dir %q: %v", dataDir, err)
		}
	}
}
