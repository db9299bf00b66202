package sealbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/mcpedge/mcpedge/internal/fsutil"
)

// FileKey is a master key kept in a file of exactly KeySize raw bytes.
// When the file does not exist, MasterKey creates it with KeySize random
// bytes and mode 0600 (and its directory with mode 0700).
//
// Losing the file loses every record sealed with it: back it up with the
// data, or better apart from it.
func FileKey(path string) KeySource { return fileKey(path) }

type fileKey string

func (f fileKey) String() string { return "key file " + string(f) }

func (f fileKey) MasterKey(ctx context.Context) ([]byte, error) {
	path := string(f)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("sealbox: %s: %w", f, err)
	}
	if len(key) != KeySize {
		hint := ""
		if t := strings.TrimSpace(string(key)); len(t) == base64.StdEncoding.EncodedLen(KeySize) {
			hint = " (it looks like base64 text: put the decoded bytes in the file, or the text in an environment variable)"
		}
		return nil, fmt.Errorf("sealbox: %s holds %d bytes, want exactly %d random bytes%s", f, len(key), KeySize, hint)
	}
	return key, nil
}

// createKeyFile writes a new random key to path unless another process
// wins the race, in which case it returns that process's key. The key is
// written and synced under a temporary name and then linked into place,
// so no reader ever sees a partial key file.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	rand.Read(key)
	won, err := fsutil.CreateExclusive(path, key)
	if err != nil {
		return nil, err
	}
	if !won { // another process made it first: use its key
		return os.ReadFile(path)
	}
	return key, nil
}

// EnvKey is a master key held, base64-encoded (standard or URL alphabet,
// with or without padding), in the environment variable name.
func EnvKey(name string) KeySource { return envKey(name) }

type envKey string

func (e envKey) String() string { return "environment variable " + string(e) }

func (e envKey) MasterKey(ctx context.Context) ([]byte, error) {
	v := strings.TrimSpace(os.Getenv(string(e)))
	if v == "" {
		return nil, fmt.Errorf("sealbox: %s is not set", e)
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(v); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sealbox: %s is not base64: %w", e, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: %s decodes to %d bytes, want %d (make one with: head -c 32 /dev/urandom | base64)", e, len(key), KeySize)
	}
	return key, nil
}
