//go:build linux

package lattice

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A file mapped into memory (MAP_SHARED) can be borrowed: its pages are
// compressed in place, used as scratch and restored, so the file on disk is
// unchanged afterwards.
func TestCatalyticMappedFile(t *testing.T) {
	l, from, to := catLattice(t)
	data := SyntheticRegion(2 << 20)
	path := filepath.Join(t.TempDir(), "borrowed.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	res, err := l.ShortestPath(bg, from, to, PathOptions{Algorithm: AlgoBFS, Catalytic: true, Borrow: m})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Memory.Catalytic || res.Memory.RestoredBytes == 0 {
		t.Fatalf("%+v", res.Memory)
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("mapped file changed")
	}
}
