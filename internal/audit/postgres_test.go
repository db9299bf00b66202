package audit

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mcpedge/mcpedge/internal/store/postgres"
	"github.com/mcpedge/mcpedge/internal/store/storetest"
)

// newPostgres opens a PostgreSQL store in a fresh schema of the server at
// MCPEDGE_TEST_POSTGRES; see storetest.PostgresURL, which also skips or
// fails t without it.
func newPostgres(t *testing.T) backend {
	t.Helper()
	ctx := t.Context()
	rawURL := storetest.PostgresURL(t)
	st, err := postgres.Open(ctx, rawURL+"&pool_max_conns=4") // a pool option: not for the raw connection
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	raw, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connecting to %s: %v", postgres.Redact(rawURL), err)
	}
	t.Cleanup(func() { raw.Close(context.Background()) })
	return backend{name: "postgres", st: st, exec: func(t *testing.T, query string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(context.WithoutCancel(t.Context()), dollars(query), args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}}
}

// dollars rewrites "?" placeholders to $1, $2, ….
func dollars(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteString("$" + strconv.Itoa(n))
	}
	return b.String()
}
