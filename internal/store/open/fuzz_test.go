package open

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpedge/mcpedge/internal/store/postgres"
)

// fuzzSecret is the password FuzzParseURL puts into every URL that has
// user information, to look for it in messages.
const fuzzSecret = "Fuzz5ecretPw"

// withSecret returns rawURL with its password replaced by fuzzSecret, if
// it parses with user information.
func withSecret(rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return "", false
	}
	u.User = url.UserPassword(u.User.Username(), fuzzSecret)
	return u.String(), true
}

// openable reports whether Open may be called on rawURL in a test: it
// touches nothing outside dataDir (a temporary directory, or "") and
// nothing on the network. Absolute sqlite paths and PostgreSQL URLs
// (which can read password and certificate files named in the URL) are
// left out; their parsing is url.Parse and pgx's.
func openable(rawURL string) bool {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		return false
	case strings.HasPrefix(rawURL, "sqlite:///"):
		return false
	case strings.HasPrefix(rawURL, "sqlite://"):
		rel := strings.TrimPrefix(rawURL, "sqlite://")
		return rel == "" || filepath.IsLocal(rel)
	}
	return true
}

// FuzzParseURL sorts arbitrary store URLs the way Open does, with a
// cancelled context (so that nothing is opened for real) and a data
// directory that is "" or a fresh temporary one; URLs that would reach
// outside it are only redacted (see openable). Open must fail without
// panicking, with a message, and no message (of Open, redact or
// postgres.Redact) may show the password of a URL.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"", "sqlite::memory:", "sqlite://", "sqlite://rel.db", "sqlite://sub/dir/rel.db", "sqlite://a/../b.db",
		"sqlite://../escape.db", "sqlite:///abs/path.db", "sqlite:rel.db", "sqlite:", "sqlite::memory:?cache=shared",
		"sqlite://rel.db?_pragma=foo", "sqlite://%2e%2e/x.db", "SQLITE::memory:", " sqlite::memory:",
		"postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable", "postgresql://u@h/db", "postgres://[::1",
		"mysql://root:hunter2@db/x", "redis://:hunter2@h:6379/0", "http://u:hunter2@[::1", "u:hunter2@h",
		"://", ":", "%zz", "file:///etc/passwd", "\x00", "sqlite://\x00", "é://ü:p@h",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	f.Fuzz(func(t *testing.T, rawURL string, inDataDir bool) {
		try := func(rawURL string, secret bool) {
			t.Helper()
			for what, msg := range map[string]string{"redact": redact(rawURL), "postgres.Redact": postgres.Redact(rawURL)} {
				if secret && strings.Contains(msg, fuzzSecret) {
					t.Fatalf("%s(%q) = %q shows the password", what, rawURL, msg)
				}
			}
			if !openable(rawURL) {
				return
			}
			dataDir := ""
			if inDataDir {
				dataDir = t.TempDir()
			}
			st, err := Open(cancelled, rawURL, dataDir)
			if err == nil {
				st.Close()
				t.Fatalf("Open(%q, %q) succeeded with a cancelled context", rawURL, dataDir)
			}
			if err.Error() == "" {
				t.Fatalf("Open(%q, %q): empty error", rawURL, dataDir)
			}
			if secret && strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("Open(%q, %q) error shows the password: %v", rawURL, dataDir, err)
			}
		}
		try(rawURL, false)
		if marked, ok := withSecret(rawURL); ok {
			try(marked, true)
		}
	})
}
