package upstream

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChildEnv(t *testing.T) {
	parent := []string{
		"PATH=/usr/bin:/bin",
		"HOME=/home/gw",
		"LANG=en_GB.UTF-8",
		"LC_ALL=C.UTF-8",
		"LC_TIME=de_DE.UTF-8",
		"TZ=Europe/Berlin",
		"TMPDIR=/tmp/gw",
		"MCPEDGE_ADMIN_KEY=mcpe_secret",
		"MCPEDGE_ADMIN_PASSWORD=hunter2hunter2",
		"Mcpedge_Store_Key=also-ours",
		"PGPASSWORD=db-secret",
		"AWS_SECRET_ACCESS_KEY=aws-secret",
		"GITHUB_TOKEN=ghp_x",
		"NODE_OPTIONS=--max-old-space-size=64",
		"=C:=weird", // Windows keeps per-drive directories like this
		"NOEQUALS",
	}
	tests := []struct {
		name    string
		inherit []string
		env     map[string]string
		windows bool
		want    []string
	}{
		{
			name: "base only",
			want: []string{"PATH=/usr/bin:/bin", "HOME=/home/gw", "LANG=en_GB.UTF-8", "LC_ALL=C.UTF-8", "LC_TIME=de_DE.UTF-8", "TZ=Europe/Berlin", "TMPDIR=/tmp/gw"},
		},
		{
			name:    "inherit and env",
			inherit: []string{"GITHUB_TOKEN", "UNSET_VAR"},
			env:     map[string]string{"B": "2", "A": "1"},
			want: []string{"PATH=/usr/bin:/bin", "HOME=/home/gw", "LANG=en_GB.UTF-8", "LC_ALL=C.UTF-8", "LC_TIME=de_DE.UTF-8", "TZ=Europe/Berlin", "TMPDIR=/tmp/gw",
				"GITHUB_TOKEN=ghp_x", "A=1", "B=2"},
		},
		{
			name:    "the gateway's own never pass, even when listed",
			inherit: []string{"MCPEDGE_ADMIN_KEY", "Mcpedge_Store_Key"},
			want:    []string{"PATH=/usr/bin:/bin", "HOME=/home/gw", "LANG=en_GB.UTF-8", "LC_ALL=C.UTF-8", "LC_TIME=de_DE.UTF-8", "TZ=Europe/Berlin", "TMPDIR=/tmp/gw"},
		},
		{
			name: "env replaces an inherited value and may set any name",
			env:  map[string]string{"HOME": "/srv/tool", "MCPEDGE_TEST_MODE": "1"},
			want: []string{"PATH=/usr/bin:/bin", "LANG=en_GB.UTF-8", "LC_ALL=C.UTF-8", "LC_TIME=de_DE.UTF-8", "TZ=Europe/Berlin", "TMPDIR=/tmp/gw",
				"HOME=/srv/tool", "MCPEDGE_TEST_MODE=1"},
		},
		{
			name:    "windows names are case-insensitive",
			inherit: []string{"github_token"},
			env:     map[string]string{"path": `C:\tools`},
			windows: true,
			want:    []string{"LC_ALL=C.UTF-8", "LC_TIME=de_DE.UTF-8", "GITHUB_TOKEN=ghp_x", `path=C:\tools`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := childEnv(parent, tc.inherit, tc.env, tc.windows)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("childEnv mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChildEnvNeverNil: exec gives a child with a nil Env the parent's
// whole environment, so an empty result must still be a non-nil slice.
func TestChildEnvNeverNil(t *testing.T) {
	if got := childEnv(nil, nil, nil, false); got == nil {
		t.Fatal("childEnv returned nil: the child would inherit everything")
	}
	if got := childEnv([]string{"MCPEDGE_ADMIN_KEY=x"}, []string{"MCPEDGE_ADMIN_KEY"}, nil, false); got == nil || len(got) != 0 {
		t.Fatalf("childEnv = %q, want an empty, non-nil environment", got)
	}
}
