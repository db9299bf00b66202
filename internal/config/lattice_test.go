package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLatticeDefaults(t *testing.T) {
	l := Default().Lattice
	want := Lattice{
		MaxPoints:             1 << 32,
		MaxInlineBlockedCells: 1 << 16,
		MaxPathPoints:         1 << 16,
		OperationTimeout:      Duration(10 * time.Second),
		MaxLattices:           1000,
	}
	if l != want {
		t.Errorf("lattice defaults %+v, want %+v", l, want)
	}
	c, err := ParseMCPServers("d.json", []byte(`{"mcpServers":{}}`))
	if err != nil || c.Lattice != want || c.Server.DataDir != DefaultDataDir() {
		t.Errorf("mcpServers import: %+v %q %v", c.Lattice, c.Server.DataDir, err)
	}
}

func TestLatticeSettings(t *testing.T) {
	src := `[lattice]
max_points = 1000000
max_inline_blocked_cells = 0
max_path_points = 10
operation_timeout = "2s"
max_lattices = 5
`
	c, ps := parseT(t, src, nil)
	if ps != nil {
		t.Fatal(ps)
	}
	want := Lattice{MaxPoints: 1e6, MaxInlineBlockedCells: 0, MaxPathPoints: 10, OperationTimeout: Duration(2 * time.Second), MaxLattices: 5}
	if c.Lattice != want {
		t.Errorf("got %+v, want %+v", c.Lattice, want)
	}
}

func TestLatticeRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"max_points zero", "[lattice]\nmax_points = 0\n",
			[]string{`c.toml:2:1: lattice.max_points: must be between 1 and 4611686018427387904 (2^62), got 0`}},
		{"max_points over engine", "[lattice]\nmax_points = 4611686018427387905\n",
			[]string{`c.toml:2:1: lattice.max_points: must be between 1 and 4611686018427387904 (2^62), got 4611686018427387905`}},
		{"max_points max ok", "[lattice]\nmax_points = 4611686018427387904\n", nil},
		{"max_points float", "[lattice]\nmax_points = 1e9\n",
			[]string{`c.toml:2:1: lattice.max_points: expected integer, got float`}},
		{"cells negative", "[lattice]\nmax_inline_blocked_cells = -1\n",
			[]string{`c.toml:2:1: lattice.max_inline_blocked_cells: must be between 0 and 16777216, got -1`}},
		{"cells huge", "[lattice]\nmax_inline_blocked_cells = 9223372036854775807\n",
			[]string{`c.toml:2:1: lattice.max_inline_blocked_cells: must be between 0 and 16777216, got 2147483647`}},
		{"path points too big", "[lattice]\nmax_path_points = 16777217\n",
			[]string{`c.toml:2:1: lattice.max_path_points: must be between 1 and 16777216, got 16777217`}},
		{"path points zero", "[lattice]\nmax_path_points = 0\n",
			[]string{`c.toml:2:1: lattice.max_path_points: must be between 1 and 16777216, got 0`}},
		{"timeout zero", "[lattice]\noperation_timeout = \"0s\"\n",
			[]string{`c.toml:2:1: lattice.operation_timeout: must be greater than 0, got 0s`}},
		{"timeout integer", "[lattice]\noperation_timeout = 10\n",
			[]string{`c.toml:2:1: lattice.operation_timeout: expected a duration string with a unit, e.g. "10s", got integer`}},
		{"max_lattices negative", "[lattice]\nmax_lattices = -3\n",
			[]string{`c.toml:2:1: lattice.max_lattices: must be between 0 and 1000000, got -3`}},
		{"unknown key", "[lattice]\nmax_point = 5\n",
			[]string{`c.toml:2:1: lattice.max_point: unknown key "max_point" (did you mean "max_points"?)`}},
		{"not a table", "lattice = 5\n",
			[]string{`c.toml:1:1: lattice: expected table ([lattice]), got integer`}},
		{"data_dir wrong type", "[server]\ndata_dir = 1\n",
			[]string{`c.toml:2:1: server.data_dir: expected string, got integer`}},
		{"data_dir NUL", "[server]\ndata_dir = \"a\\u0000b\"\n",
			[]string{`c.toml:2:1: server.data_dir: must not contain NUL bytes`}},
		{"data_dir empty ok", "[server]\ndata_dir = \"\"\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, got := parseT(t, tt.src, nil)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("source:\n%s\ngot:\n%s\nwant:\n%s", tt.src, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg/data")
	if got := DefaultDataDir(); got != "/xdg/data/mcpedge" {
		t.Errorf("with XDG_DATA_HOME: %q", got)
	}
	t.Setenv("HOME", "/home/someone")
	for _, x := range []string{"", "relative/dir"} { // the XDG spec says to ignore relative values
		t.Setenv("XDG_DATA_HOME", x)
		if got := DefaultDataDir(); got != "/home/someone/.local/share/mcpedge" {
			t.Errorf("XDG_DATA_HOME=%q: %q", x, got)
		}
	}
	t.Setenv("HOME", "")
	if got := DefaultDataDir(); got != "" {
		t.Errorf("no home: %q", got)
	}
}

func TestLoadDataDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mcpedge.toml")
	if err := os.WriteFile(path, []byte("[server]\ndata_dir = \"state\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "state"); c.Server.DataDir != want {
		t.Errorf("relative data_dir = %q, want %q", c.Server.DataDir, want)
	}
	if err := os.WriteFile(path, []byte("[server]\ndata_dir = \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(path); err != nil || c.Server.DataDir != "" {
		t.Errorf("empty data_dir = %q, %v", c.Server.DataDir, err)
	}
}
