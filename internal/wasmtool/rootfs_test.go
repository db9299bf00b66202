package wasmtool

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestRootFSConfines exercises rootFS with the raw paths a hostile module
// can pass to path_open (a Go module cleans its paths before that, so the
// module-level tests cannot send "..").
func TestRootFSConfines(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "mount")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, s := range map[string]string{filepath.Join(top, "secret"): "secret", filepath.Join(dir, "f"): "inside"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(top, "secret"), filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(dir, "sub", "up")); err != nil {
		t.Fatal(err)
	}
	open := func(t *testing.T, readOnly bool) *rootFS {
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = root.Close() })
		return &rootFS{root: root, readOnly: readOnly}
	}

	for _, ro := range []bool{true, false} {
		fsys := open(t, ro)
		for _, p := range []string{"..", "../secret", "sub/../../secret", "abs", "sub/up", "/etc/passwd", "sub/../../mount/../secret"} {
			if f, e := fsys.OpenFile(p, experimentalsys.O_RDONLY, 0); e == 0 {
				_ = f.Close()
				t.Errorf("readOnly=%v: opened %q", ro, p)
			}
			if _, e := fsys.Stat(p); e == 0 {
				t.Errorf("readOnly=%v: stat %q succeeded", ro, p)
			}
		}
		if e := fsys.Rename("f", "../moved"); e == 0 {
			t.Errorf("readOnly=%v: renamed out of the directory", ro)
		}
		if e := fsys.Symlink("/etc/passwd", "link"); e == 0 {
			t.Errorf("readOnly=%v: created a symbolic link", ro)
		}
		// Inside is fine.
		f, e := fsys.OpenFile("sub/../f", experimentalsys.O_RDONLY, 0)
		if e != 0 {
			t.Fatalf("readOnly=%v: open f: %v", ro, e)
		}
		buf := make([]byte, 16)
		n, e := f.Read(buf)
		if e != 0 || string(buf[:n]) != "inside" {
			t.Errorf("readOnly=%v: read %q, %v", ro, buf[:n], e)
		}
		if n, e := f.Seek(0, io.SeekStart); n != 0 || e != 0 {
			t.Errorf("seek: %d %v", n, e)
		}
		_ = f.Close()
	}

	ro := open(t, true)
	for name, flag := range map[string]experimentalsys.Oflag{
		"write":       experimentalsys.O_WRONLY,
		"read-write":  experimentalsys.O_RDWR,
		"create":      experimentalsys.O_RDONLY | experimentalsys.O_CREAT,
		"truncate":    experimentalsys.O_RDONLY | experimentalsys.O_TRUNC,
		"append":      experimentalsys.O_RDONLY | experimentalsys.O_APPEND,
		"create only": experimentalsys.O_CREAT | experimentalsys.O_EXCL,
	} {
		if _, e := ro.OpenFile("g", flag, 0o644); e != experimentalsys.EROFS {
			t.Errorf("read-only %s: errno %v, want EROFS", name, e)
		}
	}
	for name, e := range map[string]experimentalsys.Errno{
		"mkdir":   ro.Mkdir("d", 0o755),
		"chmod":   ro.Chmod("f", 0o600),
		"rename":  ro.Rename("f", "g"),
		"rmdir":   ro.Rmdir("sub"),
		"unlink":  ro.Unlink("f"),
		"link":    ro.Link("f", "g"),
		"utimens": ro.Utimens("f", experimentalsys.UTIME_OMIT, 0),
	} {
		if e != experimentalsys.EROFS {
			t.Errorf("read-only %s: errno %v, want EROFS", name, e)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "inside" {
		t.Errorf("f changed: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "g")); !os.IsNotExist(err) {
		t.Errorf("g created: %v", err)
	}

	d, e := ro.OpenFile("", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if e != 0 {
		t.Fatal(e)
	}
	ents, e := d.Readdir(-1)
	if e != 0 {
		t.Fatal(e)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name)
		if de.Ino == 0 {
			t.Errorf("%s: no inode", de.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"abs", "f", "sub"}) {
		t.Errorf("entries = %q", names)
	}
	_ = d.Close()
	if _, e := ro.OpenFile("f", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0); e != experimentalsys.ENOTDIR {
		t.Errorf("O_DIRECTORY on a file: %v", e)
	}
	if _, e := ro.OpenFile("abs", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); e != experimentalsys.ELOOP {
		t.Errorf("O_NOFOLLOW on a link: %v", e)
	}

	rw := open(t, false)
	f, e := rw.OpenFile("sub/new", experimentalsys.O_RDWR|experimentalsys.O_CREAT|experimentalsys.O_EXCL, 0o600)
	if e != 0 {
		t.Fatal(e)
	}
	if _, e := f.Write([]byte("hello")); e != 0 {
		t.Fatal(e)
	}
	if n, e := f.Pread(make([]byte, 5), 0); n != 5 || e != 0 {
		t.Errorf("pread: %d %v", n, e)
	}
	_ = f.Close()
	if e := rw.Rename("sub/new", "renamed"); e != 0 {
		t.Errorf("rename inside: %v", e)
	}
	if e := rw.Unlink("sub"); e != experimentalsys.EISDIR {
		t.Errorf("unlink a directory: %v", e)
	}
	if e := rw.Rmdir("renamed"); e != experimentalsys.ENOTDIR {
		t.Errorf("rmdir a file: %v", e)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "renamed")); err != nil || string(b) != "hello" {
		t.Errorf("renamed = %q %v", b, err)
	}
}
