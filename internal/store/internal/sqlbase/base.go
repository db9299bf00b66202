package sqlbase

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mcpedge/mcpedge/internal/sealbox"
	"github.com/mcpedge/mcpedge/internal/store"
)

// Store implements store.Store except Kind, Ping and Close, which the
// dialect packages add around their connections.
type Store struct {
	e Engine
	// clock is the source of the times the store fills (CreatedAt …).
	clock func() time.Time
	// box seals the secrets table once SealSecrets attached it; nil
	// before (see secrets.go).
	box atomic.Pointer[sealbox.Box]
}

// New returns a Store over e.
func New(e Engine) *Store {
	return &Store{e: e, clock: time.Now}
}

// now is the store's clock: UTC, rounded down to the microsecond both
// databases keep, so a value written and read back compares Equal.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Microsecond) }

// ts normalizes a caller's time the same way (zero stays zero).
func ts(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Policy and revocation counters (table counters).
const (
	counterPolicy     = "policy"
	counterRevocation = "revocation"
)

// bump increments a counter and returns its new value. The row stays
// locked until commit (see the package doc on lock order).
func bump(ctx context.Context, q Q, name string) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value`, name).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("advancing the %s counter: %w", name, err)
	}
	return v, nil
}

// notFound and conflict build the sentinel errors with what the user needs
// to know: which kind of thing, and which one.
func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound) }

func conflict(what string) error { return fmt.Errorf("%s: %w", what, store.ErrConflict) }

// isNoRows reports whether a QueryRow found nothing.
func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// wrap adds context to database errors and leaves the store's own errors
// (which already say what and which) alone.
func wrap(err *error, format string, args ...any) {
	if *err == nil {
		return
	}
	for _, s := range []error{store.ErrNotFound, store.ErrConflict, store.ErrLastOwner, store.ErrReused, store.ErrSchemaTooNew, store.ErrChainBroken, errInvalid} {
		if errors.Is(*err, s) {
			return
		}
	}
	*err = fmt.Errorf(format+": %w", append(args, *err)...)
}

// errInvalid marks rejected input (a malformed name, an unknown role).
var errInvalid = errors.New("invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w "+format, append([]any{errInvalid}, args...)...)
}

var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// validRole mirrors principal.ValidRole; the store does not import the
// packages above it, and an unknown role stored here would be a credential
// that silently grants nothing or, worse, something later.
func validRole(r string) bool {
	switch r {
	case "viewer", "member", "admin", "owner":
		return true
	}
	return false
}

// ---- column encodings

// jsonList encodes a string list column. nil and empty both store "[]".
func jsonList(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil { // []string always marshals
		panic(err)
	}
	return string(b)
}

// nullStr stores "" as NULL (optional references).
func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// listCol scans a jsonList column. It always yields a non-nil slice so
// that lists encode as [] rather than null in API responses.
type listCol struct{ p *[]string }

func (c listCol) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*c.p = []string{}
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("list column: unexpected %T", src)
	}
	var out []string
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("list column holds invalid JSON %.40q: %w", b, err)
	}
	if out == nil {
		out = []string{}
	}
	*c.p = out
	return nil
}

// timeCol scans a time column: INTEGER Unix microseconds (SQLite),
// timestamptz (PostgreSQL) or NULL (the zero time). Always UTC.
type timeCol struct{ p *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.p = time.Time{}
	case int64:
		*c.p = time.UnixMicro(v).UTC()
	case time.Time:
		*c.p = v.UTC()
	default:
		return fmt.Errorf("time column: unexpected %T", src)
	}
	return nil
}

// strCol scans a nullable text column; NULL is "".
type strCol struct{ p *string }

func (c strCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.p = ""
	case string:
		*c.p = v
	case []byte:
		*c.p = string(v)
	default:
		return fmt.Errorf("text column: unexpected %T", src)
	}
	return nil
}

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q Q, scan func(Row) (*T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

func quote(s string) string { return strconv.Quote(s) }
