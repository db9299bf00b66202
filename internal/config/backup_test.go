package config

import (
	"strings"
	"testing"
	"time"
)

func TestBackupSection(t *testing.T) {
	c, err := Parse("t.toml", []byte("[server]\ndata_dir = \"/var/lib/mcpedge\"\n[backup]\ninterval = \"6h\"\ndir = \"/backups\"\nkeep = 3\nkey_file = \"backup.key\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Backup{Interval: Duration(6 * time.Hour), Dir: "/backups", Keep: 3, KeyFile: "backup.key"}
	if c.Backup != want {
		t.Errorf("got %+v, want %+v", c.Backup, want)
	}
	c, err = Parse("t.toml", []byte(""))
	if err != nil || c.Backup != DefaultBackup() || c.Backup.Interval != 0 {
		t.Errorf("defaults: %+v %v", c.Backup, err)
	}
	for _, tc := range []struct{ toml, want string }{
		{"[backup]\ninterval = \"30s\"\n", "backup.interval: must be 0 (no scheduled backups) or between 1m0s and"},
		{"[backup]\nkeep = 0\n", "backup.keep: must be between 1 and 10000, got 0"},
		{"[backup]\ndir = \"\"\n", "backup.dir: must not be empty"},
		{"[backup]\nevery = \"1h\"\n", "every"},
		{"[backup]\ninterval = 60\n", "backup.interval"},
		{"[server]\ndata_dir = \"\"\n[backup]\ninterval = \"1h\"\n", "relative to data_dir, which is not set"},
	} {
		_, err := Parse("t.toml", []byte(tc.toml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.toml, err, tc.want)
		}
	}
}
