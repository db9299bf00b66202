package open

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpedge/mcpedge/internal/config"
	"github.com/mcpedge/mcpedge/internal/devicekey"
	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// TPMKeyFile is the TPM-sealed master key of [store] key = "tpm", in
// data_dir: a key of its own, apart from the device's and the queue's.
const TPMKeyFile = "store.tpm"

// MasterKey chooses the master key of the store's secrets (the API-key
// HMAC key, the token signing key; see docs/security.md) from the
// configuration ([store] key, key_file, key_env) and the environment:
// "env", "file" and "tpm" as configured; absent, the variable when it is
// set, else the key file (by default store.key beside a SQLite database).
// A PostgreSQL store's key is shared by every replica, so its key file
// must already exist and it can not be sealed to one machine's TPM.
func MasterKey(cfg *config.Config) (sealbox.KeySource, error) {
	sc := cfg.Store
	envName := sc.KeyEnv
	if envName == "" {
		envName = config.DefaultStoreKeyEnv
	}
	postgres := strings.HasPrefix(sc.URL, "postgres://") || strings.HasPrefix(sc.URL, "postgresql://")
	file := func() (sealbox.KeySource, error) {
		path := sc.KeyFile
		if path == "" {
			return DefaultKey(sc.URL, cfg.Server.DataDir)
		}
		if !filepath.IsAbs(path) {
			if cfg.Server.DataDir == "" {
				return nil, fmt.Errorf("store.key_file %q is relative to data_dir, which is not set; give an absolute path", path)
			}
			path = filepath.Join(cfg.Server.DataDir, path)
		}
		if postgres {
			return existingKeyFile(path), nil
		}
		return FileKey(path), nil
	}
	switch sc.Key {
	case config.StoreKeyEnv:
		if os.Getenv(envName) == "" {
			return nil, fmt.Errorf("[store] key = %q, but %s is not set (base64 of 32 random bytes; make one with: head -c 32 /dev/urandom | base64)", sc.Key, envName)
		}
		return sealbox.EnvKey(envName), nil
	case config.StoreKeyFile:
		return file()
	case config.StoreKeyTPM:
		if postgres {
			return nil, errors.New(`[store] key = "tpm" seals the key to this machine's TPM, but replicas sharing a PostgreSQL store need the same key: use key_env or key_file`)
		}
		if cfg.Server.DataDir == "" {
			return nil, errors.New(`[store] key = "tpm" keeps the sealed key in data_dir, which is not set`)
		}
		return devicekey.TPMSealedKeyFile(cfg.Device.TPM, filepath.Join(cfg.Server.DataDir, TPMKeyFile)), nil
	}
	if os.Getenv(envName) != "" {
		return sealbox.EnvKey(envName), nil
	}
	return file()
}

// existingKeyFile is a key file that must exist: the key of a PostgreSQL
// store is shared by every replica, so each machine making its own would
// lock the others out.
type existingKeyFile string

func (f existingKeyFile) String() string { return "key file " + string(f) }

func (f existingKeyFile) MasterKey(ctx context.Context) ([]byte, error) {
	if _, err := os.Stat(string(f)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store.key_file %s does not exist; a PostgreSQL store's key is shared by every replica, so make it once (head -c 32 /dev/urandom > %s; chmod 600 %s) and copy it to each", string(f), string(f), string(f))
	}
	return sealbox.FileKey(string(f)).MasterKey(ctx)
}

// Configured opens the store cfg configures, with its secrets' master key
// chosen by [MasterKey]. It is how the gateway and every CLI command open
// the store.
func Configured(ctx context.Context, cfg *config.Config) (store.Store, error) {
	key, err := MasterKey(cfg)
	if err != nil {
		return nil, err
	}
	return OpenWithKey(ctx, cfg.Store.URL, cfg.Server.DataDir, key)
}

// NoCreate returns key, except that a key file mcpedge would create when
// it is missing (the default store.key of a SQLite store) must exist:
// commands that read data sealed with an existing key (a restore, a
// backup) must not make a new one.
func NoCreate(key sealbox.KeySource) sealbox.KeySource {
	if fk, ok := key.(fileKey); ok {
		return mustExistKey(fk.path)
	}
	return key
}

type mustExistKey string

func (f mustExistKey) String() string { return "key file " + string(f) }

func (f mustExistKey) MasterKey(ctx context.Context) ([]byte, error) {
	if _, err := os.Stat(string(f)); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the master key file %s does not exist: copy the key file of the store the backup was made from there (or give the key in $%s)", string(f), KeyEnv)
	}
	return sealbox.FileKey(string(f)).MasterKey(ctx)
}
