package wasmtool

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// rootFS is the file system a module sees at one mount: a host directory it
// cannot leave.
//
// wazero's own directory mounts (FSConfig.WithDirMount and
// WithReadOnlyDirMount) do not confine the guest: their documentation says
// the guest may escape "via relative path lookups like ../../", and a
// symbolic link inside the directory is followed wherever it points. rootFS
// resolves every path with an [os.Root] instead, which refuses ".." past the
// top and symbolic links that lead out, at each step of the lookup (openat
// with no-follow semantics), so neither a guest nor another process racing
// it can reach a file outside the directory.
//
// A read-only rootFS refuses, with EROFS, every operation that could change
// the directory, including opening for read with O_CREAT or O_TRUNC (which
// wazero's ReadFS would let through). rootFS never creates symbolic links,
// so that a module cannot leave links to host paths behind for others to
// follow.
type rootFS struct {
	experimentalsys.UnimplementedFS
	root     *os.Root
	readOnly bool
}

// rel turns the path wazero hands over (relative to the mount, "" for its
// top) into one for os.Root.
func rel(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// errno maps an error of the os package to the WASI errno. os.Root reports
// a path that would leave the directory with an error of its own, which
// becomes EPERM.
func errno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var se syscall.Errno
	if errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrClosed) || errors.Is(err, fs.ErrInvalid) {
		return experimentalsys.UnwrapOSError(err)
	}
	return experimentalsys.EPERM
}

func (r *rootFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	p = rel(p)
	var of int
	switch flag & (experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		of = os.O_RDWR
	case experimentalsys.O_WRONLY:
		of = os.O_WRONLY
	default:
		of = os.O_RDONLY
	}
	for _, m := range [...]struct {
		o experimentalsys.Oflag
		f int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
	} {
		if flag&m.o != 0 {
			of |= m.f
		}
	}
	if flag&experimentalsys.O_DIRECTORY != 0 && of&(os.O_WRONLY|os.O_RDWR) != 0 {
		return nil, experimentalsys.EISDIR
	}
	if r.readOnly && of != os.O_RDONLY && of != os.O_RDONLY|os.O_SYNC {
		return nil, experimentalsys.EROFS
	}
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		// os.Root follows links that stay inside; O_NOFOLLOW asks not to
		// follow a final link at all.
		if fi, err := r.root.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	f, err := r.root.OpenFile(p, of, perm)
	if err != nil {
		return nil, errno(err)
	}
	rf := &rootFile{seeker: seeker[int64]{f}, fs: r, path: p, f: f, flag: flag}
	if flag&experimentalsys.O_DIRECTORY != 0 {
		if dir, e := rf.IsDir(); e != 0 || !dir {
			_ = f.Close()
			if e == 0 {
				e = experimentalsys.ENOTDIR
			}
			return nil, e
		}
	}
	return rf, 0
}

func (r *rootFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := r.root.Lstat(rel(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

func (r *rootFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := r.root.Stat(rel(p))
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	return sys.NewStat_t(fi), 0
}

func (r *rootFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return errno(r.root.Mkdir(rel(p), perm))
}

func (r *rootFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return errno(r.root.Chmod(rel(p), perm))
}

func (r *rootFS) Rename(from, to string) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return errno(r.root.Rename(rel(from), rel(to)))
}

func (r *rootFS) Rmdir(p string) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	fi, err := r.root.Lstat(rel(p))
	if err != nil {
		return errno(err)
	}
	if !fi.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return errno(r.root.Remove(rel(p)))
}

func (r *rootFS) Unlink(p string) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	fi, err := r.root.Lstat(rel(p))
	if err != nil {
		return errno(err)
	}
	if fi.IsDir() {
		return experimentalsys.EISDIR
	}
	return errno(r.root.Remove(rel(p)))
}

func (r *rootFS) Link(oldPath, newPath string) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return errno(r.root.Link(rel(oldPath), rel(newPath)))
}

// Symlink is refused: see rootFS.
func (r *rootFS) Symlink(string, string) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return experimentalsys.EPERM
}

func (r *rootFS) Readlink(p string) (string, experimentalsys.Errno) {
	s, err := r.root.Readlink(rel(p))
	return s, errno(err)
}

func (r *rootFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if r.readOnly {
		return experimentalsys.EROFS
	}
	return errno(r.root.Chtimes(rel(p), utime(atim), utime(mtim)))
}

// utime converts a WASI timestamp; the zero time.Time leaves a time as it
// is, which is what UTIME_OMIT asks for.
func utime(ns int64) time.Time {
	if ns == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// rootFile is a file opened through a rootFS.
type rootFile struct {
	seeker[int64]
	fs   *rootFS
	path string // relative to the root, for Utimens and directory entries
	f    *os.File
	flag experimentalsys.Oflag
	st   *sys.Stat_t // cached: device, inode and type do not change
}

func (f *rootFile) cached() (*sys.Stat_t, experimentalsys.Errno) {
	if f.st == nil {
		if _, e := f.Stat(); e != 0 {
			return nil, e
		}
	}
	return f.st, 0
}

func (f *rootFile) Dev() (uint64, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return 0, e
	}
	return st.Dev, 0
}

func (f *rootFile) Ino() (sys.Inode, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return 0, e
	}
	return st.Ino, 0
}

func (f *rootFile) IsDir() (bool, experimentalsys.Errno) {
	st, e := f.cached()
	if e != 0 {
		return false, e
	}
	return st.Mode.IsDir(), 0
}

func (f *rootFile) IsAppend() bool { return f.flag&experimentalsys.O_APPEND != 0 }

// SetAppend is not supported: the append mode is fixed when a file is
// opened.
func (f *rootFile) SetAppend(bool) experimentalsys.Errno { return experimentalsys.ENOSYS }

func (f *rootFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	fi, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, errno(err)
	}
	st := sys.NewStat_t(fi)
	f.st = &st
	return st, 0
}

func (f *rootFile) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Read(buf)
	if err == io.EOF {
		err = nil
	}
	return n, errno(err)
}

func (f *rootFile) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.ReadAt(buf, off)
	if err == io.EOF {
		err = nil
	}
	return n, errno(err)
}

// seeker gives rootFile its Seek method. It is generic only because go
// vet's stdmethods check wants every method Seek(int64, int) to return
// (int64, error) like io.Seeker's, and wazero's File interface needs an
// Errno there; vet does not look at a method whose offset has a type
// parameter's type.
type seeker[Off ~int64] struct{ sf *os.File }

func (s seeker[Off]) Seek(offset Off, whence int) (int64, experimentalsys.Errno) {
	n, err := s.sf.Seek(int64(offset), whence)
	return n, errno(err)
}

func (f *rootFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	entries, err := f.f.ReadDir(n)
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		return nil, errno(err)
	}
	out := make([]experimentalsys.Dirent, 0, len(entries))
	for _, e := range entries {
		d := experimentalsys.Dirent{Name: e.Name(), Type: e.Type()}
		// The entry's own Info would stat by a path relative to the
		// gateway's working directory; ask the root instead.
		if fi, err := f.fs.root.Lstat(path.Join(f.path, e.Name())); err == nil {
			d.Ino = sys.NewStat_t(fi).Ino
		}
		out = append(out, d)
	}
	return out, 0
}

func (f *rootFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Write(buf)
	return n, errno(err)
}

func (f *rootFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.WriteAt(buf, off)
	return n, errno(err)
}

func (f *rootFile) Truncate(size int64) experimentalsys.Errno {
	return errno(f.f.Truncate(size))
}

func (f *rootFile) Sync() experimentalsys.Errno { return errno(f.f.Sync()) }

func (f *rootFile) Datasync() experimentalsys.Errno { return errno(f.f.Sync()) }

func (f *rootFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.fs.readOnly {
		return experimentalsys.EROFS
	}
	return errno(f.fs.root.Chtimes(f.path, utime(atim), utime(mtim)))
}

func (f *rootFile) Close() experimentalsys.Errno { return errno(f.f.Close()) }

var (
	_ experimentalsys.FS   = (*rootFS)(nil)
	_ experimentalsys.File = (*rootFile)(nil)
)
