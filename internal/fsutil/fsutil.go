// Package fsutil holds the two file routines the gateway's stateful parts
// share: creating a secret file exactly once, durably, however many
// processes race to create it; and reading a file that must be small
// without trusting its size.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CreateExclusive writes data to path (mode 0600, creating its directory
// 0700) if no file is there yet. It writes a temporary file, syncs it and
// links it into place, then syncs the directory, so the file is either
// absent or complete even across a crash, and of two racing creators
// exactly one wins: won is false, with no error, when path existed.
func CreateExclusive(path string, data []byte) (won bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable
		d.Close()
	}
	return true, nil
}

// ErrTooLarge is returned by ReadBounded for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ReadBounded reads path, which must hold at most limit bytes; a larger
// file is an error wrapping ErrTooLarge, read no further than limit+1.
func ReadBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, limit, ErrTooLarge)
	}
	return b, nil
}
