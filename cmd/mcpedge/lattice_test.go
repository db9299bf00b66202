package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// runBinary runs the mcpedge binary and returns its combined output and
// exit code.
func runBinary(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("running mcpedge %v: %v", args, err)
	return "", -1
}

func TestLatticeBenchHelp(t *testing.T) {
	out, code := runBinary(t, "lattice", "bench", "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"mcpedge lattice bench [flags]", "--large", "-3d", "-shape", "-repeats", "-catalytic"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if out, _ := runBinary(t, "help"); !strings.Contains(out, "lattice bench") {
		t.Errorf("usage does not mention lattice bench:\n%s", out)
	}
}

func TestLatticeBenchRuns(t *testing.T) {
	out, code := runBinary(t, "lattice", "bench", "--shape", "64x64", "--shape", "8x8x8", "--catalytic=false", "--baseline-max", "-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"GOMAXPROCS=", "bfs-1core", "bfs-allcores", "[64 64]", "[8 8 8]", "skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestLatticeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"lattice"},
		{"lattice", "run"},
		{"lattice", "bench", "--shape", "10xA"},
		{"lattice", "bench", "--density", "1.5"},
		{"lattice", "bench", "extra"},
	} {
		if out, code := runBinary(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, out)
		}
	}
}
