package open

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/config"
)

// MasterKey chooses the key source the configuration and the environment
// say, and refuses combinations that would lock replicas out, each with a
// message that says what to do.
func TestMasterKeyChoice(t *testing.T) {
	dir := t.TempDir()
	cfg := func(url, key, file, env string) *config.Config {
		c := config.Default()
		c.Server.DataDir = dir
		c.Store.URL, c.Store.Key, c.Store.KeyFile, c.Store.KeyEnv = url, key, file, env
		return c
	}
	const envName = "MCPEDGE_TEST_STORE_KEY"
	for _, tc := range []struct {
		name    string
		cfg     *config.Config
		env     string // value of envName, "" unset
		want    string // in the source's String()
		wantErr string
	}{
		{"env configured, set", cfg("", config.StoreKeyEnv, "", envName), "c2VjcmV0", envName, ""},
		{"env configured, unset", cfg("", config.StoreKeyEnv, "", envName), "", "", envName + " is not set"},
		{"absent, env set", cfg("", "", "", envName), "c2VjcmV0", envName, ""},
		{"file, relative", cfg("", config.StoreKeyFile, "k.key", ""), "", filepath.Join(dir, "k.key"), ""},
		{"tpm on postgres", cfg("postgres://h/db", config.StoreKeyTPM, "", ""), "", "", "replicas sharing a PostgreSQL store"},
		{"postgres key file", cfg("postgres://h/db", "", filepath.Join(dir, "shared.key"), ""), "", "key file " + filepath.Join(dir, "shared.key"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(envName, tc.env)
			} else {
				t.Setenv(envName, "")
				os.Unsetenv(envName)
			}
			src, err := MasterKey(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s, ok := src.(interface{ String() string })
			if !ok || !strings.Contains(s.String(), tc.want) {
				t.Fatalf("source %v, want it to name %q", src, tc.want)
			}
		})
	}
	// TPM without a data directory.
	c := cfg("", config.StoreKeyTPM, "", "")
	c.Server.DataDir = ""
	if _, err := MasterKey(c); err == nil || !strings.Contains(err.Error(), "data_dir") {
		t.Fatalf("tpm without data_dir: %v", err)
	}
	// A PostgreSQL store's key file must exist: one machine making its
	// own would lock the other replicas out.
	src, err := MasterKey(cfg("postgres://h/db", "", filepath.Join(dir, "missing.key"), ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.MasterKey(context.Background()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing shared key file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.key")); !os.IsNotExist(err) {
		t.Fatal("the shared key file was created")
	}
}
